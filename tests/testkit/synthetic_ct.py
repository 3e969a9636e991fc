"""Small synthetic CT DICOM series written with pydicom, for tests and benchmarks.

These are not a phantom (see ``ctharmony.phantom`` for that): just valid CT Image Storage files with
controllable geometry, tags and transfer syntax, so the catalog and the reader can be exercised on
every odd case an archive holds (tilt, gaps, scouts, compressed pixel data...).

Example:
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     len(write_ct_series(Path(tmp) / "s1", slices=4, rows=16, columns=16))
    4
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000Lossless, JPEGLosslessSV1

from ctharmony.archive.ct_dataset import AXIAL, ct_template, derived_uid, full_dataset, save_slice, slice_part

__all__ = ["AXIAL", "VENDOR_TAGS", "ct_slice_dataset", "transcode_with_gdcm", "write_ct_series"]

UID_NAMESPACE = "ctharmony-synthetic"
SYNTAXES = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000Lossless, JPEGLosslessSV1)
DEFAULT_TAGS: dict[str, Any] = {
    "PatientName": "SYNTH^PATIENT", "PatientID": "SYNTH-0001", "PatientBirthDate": "", "PatientSex": "O",
    "StudyDate": "20240101", "StudyTime": "120000", "StudyID": "1", "AccessionNumber": "",
    "ReferringPhysicianName": "", "SeriesNumber": 1, "Manufacturer": "SIEMENS",
    "ManufacturerModelName": "SOMATOM Force", "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"],
    "SeriesDescription": "Abdomen PV 3.0 Br40 FBP", "ConvolutionKernel": "Br40", "KVP": 120,
    "PositionReferenceIndicator": "", "AcquisitionNumber": 1,
}

# Headers as four vendors write them, with type-2/3 attributes absent (None deletes) or empty as the
# standard allows: what real archives send and writers must cope with.
VENDOR_TAGS: dict[str, dict[str, Any]] = {
    "GE": {"Manufacturer": "GE MEDICAL SYSTEMS", "ManufacturerModelName": "Revolution CT", "ConvolutionKernel":
           "STANDARD", "SeriesDescription": None, "PatientBirthDate": None, "PatientSex": None, "StudyID": None,
           "AccessionNumber": None, "ReferringPhysicianName": None, "SeriesNumber": None, "KVP": ""},
    "Philips": {"Manufacturer": "Philips", "ManufacturerModelName": "IQon - Spectral CT", "ConvolutionKernel": "B",
                "PatientName": "", "PatientID": "", "StudyDate": None, "StudyTime": None, "InstitutionName": ""},
    "Siemens": {"Manufacturer": "SIEMENS", "ConvolutionKernel": ["Br40d", "3"], "PatientSex": "",
                "PositionReferenceIndicator": None, "AcquisitionNumber": None},
    "Canon": {"Manufacturer": "TOSHIBA", "ManufacturerModelName": "Aquilion ONE", "ConvolutionKernel": "FC08",
              "SeriesDescription": "", "PatientBirthDate": "", "ReferringPhysicianName": None, "RescaleType": None},
}


def ct_slice_dataset(
    pixels: np.ndarray,
    *,
    position: Sequence[float],
    orientation: Sequence[float] = AXIAL,
    pixel_spacing: Sequence[float] = (0.8, 0.8),
    series_uid: str,
    study_uid: str,
    frame_uid: str,
    instance: int = 1,
    slope: float = 1.0,
    intercept: float = -1024.0,
    tags: dict[str, Any] | None = None,
) -> Dataset:
    """One CT Image Storage dataset with stored values ``pixels`` (uint16 or int16); ``tags`` win (None deletes)."""
    template = ct_template(
        rows=pixels.shape[0], columns=pixels.shape[1], pixel_spacing=pixel_spacing, orientation=orientation,
        signed=pixels.dtype == np.int16, slope=slope, intercept=intercept, slice_thickness=1.0,
        tags={**DEFAULT_TAGS, "StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid,
              "FrameOfReferenceUID": frame_uid},
    )
    sop_uid = derived_uid(series_uid, instance, list(position), namespace=UID_NAMESPACE)
    ds = full_dataset(template, slice_part(pixels, position=position, sop_uid=sop_uid, instance=instance))
    for key, value in (tags or {}).items():
        if value is None:
            if key in ds:
                delattr(ds, key)
        else:
            setattr(ds, key, value)
    return ds


def write_ct_series(
    out_dir: Path,
    *,
    slices: int = 4,
    rows: int = 16,
    columns: int = 16,
    spacing: float = 2.0,
    origin: Sequence[float] = (-10.0, -12.0, 30.0),
    orientation: Sequence[float] = AXIAL,
    positions: Sequence[Sequence[float]] | None = None,
    series_uid: str | None = None,
    study_uid: str | None = None,
    frame_uid: str | None = None,
    tags: dict[str, Any] | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
    seed: int = 0,
    shuffle_names: bool = True,
) -> list[Path]:
    """Write a CT series, one file per slice; returns the paths in slice order (along the normal).

    Stored values are random uint16 in [0, 2000] (HU = value - 1024). ``positions`` overrides the
    regular grid (for gaps, tilt...). File names are shuffled so that readers must sort by geometry.
    """
    if transfer_syntax not in SYNTAXES:
        raise ValueError(f"synthetic series: transfer syntax {transfer_syntax} is not supported")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    series_uid = series_uid or derived_uid(out_dir, seed, "series", namespace=UID_NAMESPACE)
    study_uid = study_uid or derived_uid(out_dir, seed, "study", namespace=UID_NAMESPACE)
    frame_uid = frame_uid or derived_uid(out_dir, seed, "frame", namespace=UID_NAMESPACE)
    normal = np.cross(orientation[:3], orientation[3:])
    if positions is None:
        positions = [np.asarray(origin) + k * spacing * normal for k in range(slices)]
    names = rng.permutation(len(positions)) if shuffle_names else np.arange(len(positions))
    paths = []
    for k, position in enumerate(positions):
        pixels = rng.integers(0, 2000, size=(rows, columns), dtype=np.uint16)
        ds = ct_slice_dataset(pixels, position=position, orientation=orientation, series_uid=series_uid,
                              study_uid=study_uid, frame_uid=frame_uid, instance=k + 1, tags=tags)
        path = out_dir / f"IM{names[k]:05d}.dcm"
        save_slice(ds, path, ExplicitVRLittleEndian if transfer_syntax == JPEGLosslessSV1 else transfer_syntax)
        if transfer_syntax == JPEGLosslessSV1:
            transcode_with_gdcm(path, "JPEGLosslessProcess14_1")
        paths.append(path)
    return paths


def transcode_with_gdcm(path: Path, syntax_name: str) -> None:
    """Re-encode ``path`` in place with GDCM (e.g. ``JPEGLosslessProcess14_1``, which pydicom cannot write)."""
    import gdcm

    reader = gdcm.ImageReader()
    reader.SetFileName(str(path))
    if not reader.Read():
        raise OSError(f"{path}: GDCM could not read the file")
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(getattr(gdcm.TransferSyntax, syntax_name)))
    change.SetInput(reader.GetImage())
    if not change.Change():
        raise OSError(f"{path}: GDCM could not transcode to {syntax_name}")
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(path))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    if not writer.Write():
        raise OSError(f"{path}: GDCM could not write the transcoded file")

