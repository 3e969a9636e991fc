"""An independent geometry reference for tests: dcm2niix, and comparisons in physical (LPS) space.

dcm2niix (Chris Rorden's converter; PyPI ``dcm2niix`` ships the binary, a ``dev`` dependency) builds its
NIfTI geometry from ImagePositionPatient / ImageOrientationPatient alone, so it checks our series
without sharing a line of our reader. What it does with what real archives send (v1.0.20260724):

- gantry tilt: detected from the slice positions against the orientation (it prints "Gantry Tilt based
  on 0018,1120 T, estimated from slice vector -T": its estimate has the opposite sign to DICOM's
  GantryDetectorTilt for columns along (0, cos T, sin T); it uses the geometry, not the tag). It writes
  the sheared stack with the shear in the sform only (SimpleITK reads the qform: wrong; read it with
  :func:`sform_points`; its slice step is the step along the normal put along z, so slices drift by
  1 - cos T of a step each), and, for signed 16-bit data, ``<name>_Tilt_1.nii``: the slices shifted
  in-plane onto an orthogonal, oblique grid stacked along the normal (one or more rows added). Its
  origin lies about one slice step too low along the normal (1.4 mm at 64 px, 2.0 mm at 256 px for
  10.5 degrees; the content matches the source planes): compare against it with that in mind. Our
  unsigned 16-bit pixels need ``-l n`` (uint16 -> int16) or it only warns "Only able to correct
  gantry tilt for 16-bit integer data".
- gaps and uneven spacing: "Interslice distance varies in this volume (incompatible with NIfTI
  format)"; the plain NIfTI puts every slice at one step (slices after a gap are misplaced), and with
  ``-l n`` ``<name>_Eq_1.nii`` is resampled (linearly) onto equidistant slices spanning the series.

:func:`dcm2niix_volume` returns the corrected volume when dcm2niix writes one, else the plain one.
SimpleITK turns NIfTI's RAS into LPS on reading, so every image here is in DICOM's LPS space.

Example:
    >>> image = dcm2niix_volume(Path("archive/dicom/site-tilt/PHANTOM-0001/M80"))  # doctest: +SKIP
    >>> values = sample_on_slices(image, *dicom_geometry(series_dir))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

DCM2NIIX_ARGS = ("-l", "n", "-z", "n", "-b", "n", "-f", "series")  # uint16 -> int16, plain .nii, no JSON


def dcm2niix_binary() -> str:
    """Path of the dcm2niix executable (the PyPI package's, else one on PATH)."""
    try:
        import dcm2niix

        return str(dcm2niix.bin)
    except ImportError:
        found = shutil.which("dcm2niix")
        if found is None:
            raise FileNotFoundError("dcm2niix not found: pip install dcm2niix (the dev extra)") from None
        return found


@dataclasses.dataclass
class Conversion:
    """What dcm2niix wrote for one series folder, and what it said."""

    niftis: list[Path]
    log: str

    @property
    def corrected(self) -> list[Path]:
        """The tilt-corrected (``_Tilt``) or equidistant (``_Eq``) volumes."""
        return [p for p in self.niftis if "_Tilt" in p.name or "_Eq" in p.name]

    def volume_path(self) -> Path:
        """The corrected volume if there is one, else the only NIfTI written."""
        chosen = self.corrected or self.niftis
        if len(chosen) != 1:
            names = ", ".join(p.name for p in self.niftis) or "none"
            raise RuntimeError(f"dcm2niix wrote {len(self.niftis)} NIfTI files ({names}), expected one volume:\n"
                               f"{self.log}")
        return chosen[0]


def dcm2niix_convert(dicom_dir: Path, out_dir: Path) -> Conversion:
    """Run dcm2niix on ``dicom_dir`` (one series) into the new or empty ``out_dir``; an error carries its output."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty: dcm2niix would add suffixed files beside the old ones")
    command = [dcm2niix_binary(), *DCM2NIIX_ARGS, "-o", str(out_dir), str(dicom_dir)]
    done = subprocess.run(command, capture_output=True, encoding="utf-8", errors="replace", timeout=120, check=False)
    log = done.stdout + done.stderr
    if done.returncode != 0:
        raise RuntimeError(f"dcm2niix failed on {dicom_dir} (exit {done.returncode}):\n{log}")
    return Conversion(niftis=sorted(out_dir.glob("*.nii")), log=log)


def dcm2niix_volume(dicom_dir: Path, work_dir: Path | None = None) -> sitk.Image:
    """dcm2niix's volume of one DICOM series as a ``SimpleITK.Image`` (LPS), tilt / spacing corrected."""
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        conversion = dcm2niix_convert(Path(dicom_dir), Path(tmp))
        return sitk.ReadImage(str(conversion.volume_path()), sitk.sitkFloat32)


def sform_points(nifti: Path) -> tuple[np.ndarray, np.ndarray]:
    """(values (z, y, x), LPS position of every voxel (z, y, x, 3)) of a NIfTI, placed by its sform.

    The sform holds a shear (a gantry-tilted stack as dcm2niix writes it) that ``SimpleITK.Image``
    cannot; this reads it directly (SimpleITK's header dictionary), so the voxels sit where dcm2niix says.
    """
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(nifti))
    image = reader.Execute()
    if int(reader.GetMetaData("sform_code")) <= 0:
        raise ValueError(f"{nifti}: no sform")
    affine = np.array([[float(v) for v in reader.GetMetaData(f"srow_{a}").split()] for a in "xyz"])
    values = sitk.GetArrayFromImage(image).astype(np.float64)
    nz, ny, nx = values.shape
    # SimpleITK's array index (k, j, i) is NIfTI's voxel (i, j, k)
    ijk = np.stack(np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij"), -1).astype(np.float64)
    ras = ijk @ affine[:, :3].T + affine[:, 3]
    lps = ras * np.array([-1.0, -1.0, 1.0])
    return values, lps.transpose(2, 1, 0, 3)


def dicom_geometry(dicom_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int, int]]:
    """(positions (z, 3), orientation (6,), pixel spacing (row, column), shape) of a series, read with pydicom.

    Slices are sorted by their position along the slice normal; the orientation must be the same for all.
    """
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(Path(dicom_dir).glob("*.dcm"))]
    if not headers:
        raise FileNotFoundError(f"no .dcm files in {dicom_dir}")
    orientation = np.asarray([float(v) for v in headers[0].ImageOrientationPatient])
    for ds in headers:
        if not np.allclose([float(v) for v in ds.ImageOrientationPatient], orientation, atol=1e-6):
            raise ValueError(f"{dicom_dir}: slices with different ImageOrientationPatient")
    normal = np.cross(orientation[:3], orientation[3:])
    positions = np.asarray([[float(v) for v in ds.ImagePositionPatient] for ds in headers])
    order = np.argsort(positions @ normal)
    spacing = np.asarray([float(v) for v in headers[0].PixelSpacing])
    return positions[order], orientation, spacing, (len(headers), int(headers[0].Rows), int(headers[0].Columns))


def sample_on_slices(image: sitk.Image, positions: np.ndarray, orientation: np.ndarray, pixel_spacing: np.ndarray,
                     shape: tuple[int, int, int], interpolator: int = sitk.sitkLinear) -> np.ndarray:
    """``image`` resampled (SimpleITK) at every voxel of a stack of DICOM slices: (z, y, x), NaN outside it."""
    row, column = np.asarray(orientation[:3]), np.asarray(orientation[3:])
    direction = np.stack([row, column, np.cross(row, column)], axis=1)  # columns: i, j, k axes
    out = np.empty(shape, np.float64)
    inside_image = sitk.Image(image.GetSize(), sitk.sitkFloat32) + 1.0
    inside_image.CopyInformation(image)
    for k, position in enumerate(positions):
        plane = sitk.Image(shape[2], shape[1], 1, sitk.sitkFloat32)
        plane.SetOrigin(tuple(float(v) for v in position))
        plane.SetSpacing((float(pixel_spacing[1]), float(pixel_spacing[0]), 1.0))
        plane.SetDirection(tuple(direction.ravel()))
        values = sitk.GetArrayFromImage(sitk.Resample(image, plane, sitk.Transform(), interpolator, 0.0))[0]
        inside = sitk.GetArrayFromImage(sitk.Resample(inside_image, plane, sitk.Transform(), sitk.sitkLinear, 0.0))[0]
        out[k] = np.where(inside > 0.999, values, np.nan)
    return out


def mean_abs_diff(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None) -> float:
    """Mean |a - b| over voxels where both are finite (and ``where`` holds)."""
    valid = np.isfinite(a) & np.isfinite(b)
    if where is not None:
        valid &= where
    if not valid.any():
        raise ValueError("no voxel to compare")
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))[valid].mean())
