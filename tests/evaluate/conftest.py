"""A small synthetic cohort: results.parquet + mask .npz files with known Dice and volumes.

Every mask is a box ``z 0:4, x 2:10`` whose rows ``y 2 : 2 + h - k`` shrink by ``k`` rows from the exam's
reference box (``k = 0``), so Dice against the reference is ``2 |B| / (|A| + |B|)`` with box sizes
known in closed form. Optional DICOM series (with a PatientID that must never reach a report) give
the converted images and the series geometry; a true-mask folder holds NIfTI files in a y-flipped
geometry that only a physical-space comparison aligns.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SHAPE = (4, 12, 12)
SPACING = (2.0, 1.5, 1.0)  # z, y, x mm -> 3 mm³ = 0.003 mL per voxel
ORIGIN = (-10.0, -20.0, 30.0)
VOXEL_ML = 0.003
SECRET_PATIENT_ID = "SECRET-PID-4711"
SECRET_PATIENT_NAME = "Doe^Jane"
HEIGHTS = [6, 7, 8, 9]  # reference box rows per exam
# rows removed from the reference box, per (protocol, method), per exam
SHRINK = {
    ("FBP", "original"): [1, 2, 1, 3],
    ("FBP", "harmonized"): [0, 1, 0, 0],
    ("M40", "original"): [5, 6, 7, 8],  # one row left: the M40 failure
    ("M40", "harmonized"): [1, 0, 1, 1],
    ("M80", "original"): [0, 0, 0, 0],  # the reference itself
    ("M80", "harmonized"): [0, 0, 1, 0],
    ("FBP", "linear-recalibration"): [1, 1, 2, 1],
    ("M40", "linear-recalibration"): [2, 3, 4, 4],
}
TRUTH_EXTRA_ROWS = 1  # the true liver box is one row taller than the reference


def box(height: int, extra: int = 0) -> np.ndarray:
    mask = np.zeros(SHAPE, np.uint8)
    mask[:, 2 : 2 + height + extra, 2:10] = 1
    return mask


def voxels(height: int) -> int:
    return SHAPE[0] * height * 8


def expected_dice(protocol: str, method: str) -> list[float]:
    """Dice of each exam against its reference, from box sizes (B is a subset of A)."""
    out = []
    for h, k in zip(HEIGHTS, SHRINK[(protocol, method)], strict=True):
        a, b = voxels(h), voxels(h - k)
        out.append(2 * b / (a + b))
    return out


def expected_volume(protocol: str, method: str) -> list[float]:
    return [voxels(h - k) * VOXEL_ML for h, k in zip(HEIGHTS, SHRINK[(protocol, method)], strict=True)]


def write_dicom_series(folder: Path, hu: np.ndarray, study_uid: str, series_uid: str) -> None:
    """A tiny CT series (SimpleITK), geometry ORIGIN/SPACING/identity, carrying the secret PatientID."""
    import SimpleITK as sitk

    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for z in range(hu.shape[0]):
        image = sitk.GetImageFromArray(hu[z].astype(np.int16))
        position = (ORIGIN[0], ORIGIN[1], ORIGIN[2] + z * SPACING[0])
        tags = {
            "0008|0060": "CT", "0008|0016": "1.2.840.10008.5.1.4.1.1.2",
            "0008|0018": f"{series_uid}.{z + 1}", "0010|0020": SECRET_PATIENT_ID,
            "0010|0010": SECRET_PATIENT_NAME, "0020|000d": study_uid, "0020|000e": series_uid,
            "0020|0013": str(z + 1), "0020|0032": "\\".join(f"{v:.3f}" for v in position),
            "0020|0037": "1\\0\\0\\0\\1\\0", "0028|0030": f"{SPACING[1]}\\{SPACING[2]}",
            "0018|0050": str(SPACING[0]),
        }
        for key, value in tags.items():
            image.SetMetaData(key, value)
        image.SetSpacing((SPACING[2], SPACING[1]))
        writer.SetFileName(str(folder / f"{z + 1:04d}.dcm"))
        writer.Execute(image)


def write_truth(folder: Path, study_uid: str, height: int) -> None:
    """The true mask in a y-flipped geometry covering the same physical voxels."""
    import SimpleITK as sitk

    folder.mkdir(parents=True, exist_ok=True)
    flipped = box(height, TRUTH_EXTRA_ROWS)[:, ::-1, :].copy()
    image = sitk.GetImageFromArray(flipped)
    image.SetSpacing(SPACING[::-1])
    image.SetOrigin((ORIGIN[0], ORIGIN[1] + (SHAPE[1] - 1) * SPACING[1], ORIGIN[2]))
    image.SetDirection((1, 0, 0, 0, -1, 0, 0, 0, 1))
    sitk.WriteImage(image, str(folder / f"{study_uid}.nii.gz"))


@dataclasses.dataclass
class SyntheticCohort:
    root: Path
    results: Path
    truth: Path
    catalog: Path
    study_uids: list[str]
    series_uids: list[str]


@pytest.fixture
def synthetic_cohort(tmp_path: Path) -> SyntheticCohort:
    return make_cohort(tmp_path, with_dicom=False)


def make_cohort(root: Path, with_dicom: bool) -> SyntheticCohort:
    rows, catalog, study_uids, series_uids = [], [], [], []
    for i, height in enumerate(HEIGHTS):
        study_uid = f"1.2.826.0.1.3680043.99.{i + 1}"
        study_uids.append(study_uid)
        write_truth(root / "masks", study_uid, height)
        for j, protocol in enumerate(("FBP", "M40", "M80")):
            series_uid = f"{study_uid}.{j + 1}7"
            series_uids.append(series_uid)
            original = root / "masks_npz" / f"{series_uid}-original.npz"
            original.parent.mkdir(parents=True, exist_ok=True)
            k = SHRINK[(protocol, "original")][i]
            np.savez_compressed(original, mask=box(height - k), spacing=np.array(SPACING))
            source_dir = root / "source" / series_uid
            if with_dicom:
                write_dicom_series(source_dir, -100 + 200 * box(height).astype(np.int16), study_uid, series_uid)
                catalog.append({"series_key": series_uid, "study_uid": study_uid, "patient_key": f"pk{i}f00d",
                                "protocol": protocol, "status": "ok",
                                "files": sorted(map(str, source_dir.glob("*.dcm")))})
            for method, model in (("harmonized", "ctharmony-harmonizer"),
                                  ("linear-recalibration", "baseline-linear-recalibration")):
                if (protocol, method) not in SHRINK:
                    continue
                k = SHRINK[(protocol, method)][i]
                converted = root / "masks_npz" / f"{series_uid}-{method}.npz"
                np.savez_compressed(converted, mask=box(height - k), spacing=np.array(SPACING))
                output_dir = root / "converted" / method / series_uid
                if with_dicom:
                    converted_hu = -100 + 150 * box(height).astype(np.int16)
                    write_dicom_series(output_dir, converted_hu, study_uid, f"{series_uid}.9")
                rows.append({
                    "series_key": series_uid, "series_uid": series_uid, "study_uid": study_uid,
                    "patient_key": f"pk{i}f00d", "site": "site-a" if i < 2 else "site-b", "protocol": protocol,
                    "model_name": model, "model_version": "3", "segmenter_name": "ctharmony-liver-unet",
                    "segmenter_version": "2", "output_series_uid": f"{series_uid}.9",
                    "output_dir": str(output_dir), "mask_original_path": str(original),
                    "mask_harmonized_path": str(converted), "liver_volume_ml_original": 0.0,
                    "liver_volume_ml_harmonized": 0.0, "status": "done", "reason": "",
                })
    rows.append(dict(rows[0], series_key="broken", protocol="OPT", status="failed", reason="unreadable",
                     mask_original_path="", mask_harmonized_path=""))
    results = root / "results.parquet"
    pd.DataFrame(rows).to_parquet(results)
    catalog_path = root / "catalog.parquet"
    if catalog:
        pd.DataFrame(catalog).to_parquet(catalog_path)
    return SyntheticCohort(root, results, root / "masks", catalog_path, study_uids, series_uids)


@pytest.fixture(scope="session")
def kit():
    """The helpers above, for tests (test modules cannot import this conftest by name)."""
    import types

    names = ["SHAPE", "SPACING", "ORIGIN", "VOXEL_ML", "SECRET_PATIENT_ID", "SECRET_PATIENT_NAME", "HEIGHTS",
             "SHRINK", "TRUTH_EXTRA_ROWS", "box", "voxels", "expected_dice", "expected_volume", "make_cohort",
             "write_dicom_series", "NOISE_SD"]
    return types.SimpleNamespace(**{name: globals()[name] for name in names})


# The simulated archive: two simulated patients (64 px, 4 slices) give the original M80 and M40 series, the true
# masks and the noise-free T80. Converted series are written as real DICOM beside them: the T80 itself (``t80``),
# the T80 plus Gaussian noise of a known SD (``noisy``) and the M80 smoothed in-plane (``smoothed``).
NOISE_SD = 25.0
SMOOTH_PX = 1.5
EXPERIMENT = "image-quality-test"


def _write_series(hu: np.ndarray, like, folder: Path, uid: str) -> None:
    from ctharmony.phantom.dicom_writer import write_ct_series

    tags = {"PatientID": "SIMULATED", "PatientName": "SIMULATED", "StudyInstanceUID": like.tags["StudyInstanceUID"],
            "SeriesInstanceUID": uid, "Modality": "CT", "SeriesDescription": folder.name}
    write_ct_series(hu, folder, tags=tags, origin=like.origin, spacing=like.spacing, positions=like.positions,
                    sop_uid_seed=f"{uid}|sop")


@pytest.fixture(scope="session")
def archive(tmp_path_factory) -> Path:
    """Simulated archive + results.parquet + catalog.parquet of its M80 / M40 originals and converted series."""
    from scipy import ndimage

    from ctharmony.archive.reader import read_series
    from ctharmony.evaluate import metrics
    from ctharmony.simulate import simulate_archive

    root = tmp_path_factory.mktemp("iq")
    table = simulate_archive(root / "sim", patients=2, slices=4, size=64, sites=("siemens-force",), seed=3,
                             series=("M80", "M40"))
    rng = np.random.default_rng(7)
    rows, catalog = [], []
    for patient in table.itertuples():
        study = patient.study_uid
        for protocol in ("M80", "M40"):
            folder = next((root / "sim" / "dicom").glob(f"*/{patient.patient_id}/{protocol}"))
            files = sorted(map(str, folder.glob("*.dcm")))
            volume = read_series(files)
            truth_mask = metrics.truth_on_grid(root / "sim" / "masks" / f"{study}.nii.gz", volume.shape,
                                               volume.spacing, volume.origin, volume.direction, volume.positions)
            mask_path = root / "masks" / f"{study}-{protocol}.npz"
            mask_path.parent.mkdir(exist_ok=True)
            np.savez_compressed(mask_path, mask=truth_mask, spacing=np.array(volume.spacing), origin=volume.origin,
                                direction=volume.direction, positions=volume.positions)
            key = volume.tags["SeriesInstanceUID"]
            catalog.append({"series_key": key, "study_uid": study, "patient_key": f"pk{patient.Index}",
                            "protocol": protocol, "status": "ok", "files": files})
            with np.load(root / "sim" / "truth" / study / "T80.npz") as data:
                t80 = data["hu"]
            converted = {"t80": t80, "noisy": t80 + rng.normal(0.0, NOISE_SD, t80.shape),
                         "smoothed": ndimage.gaussian_filter(volume.hu, (0, SMOOTH_PX, SMOOTH_PX))}
            for method, hu in converted.items():
                out = root / "converted" / method / key
                _write_series(hu, volume, out, f"{key}.{len(rows) + 1}")
                rows.append({"series_key": key, "series_uid": key, "study_uid": study,
                             "patient_key": f"pk{patient.Index}", "site": "siemens-force", "protocol": protocol,
                             "method": method, "model_name": f"test-{method}", "model_version": "1",
                             "output_dir": str(out), "mask_original_path": str(mask_path),
                             "mask_harmonized_path": str(mask_path), "status": "done", "reason": ""})
    pd.DataFrame(rows).to_parquet(root / "results.parquet")
    pd.DataFrame(catalog).to_parquet(root / "catalog.parquet")
    return root


@pytest.fixture(scope="session")
def evaluation(archive):
    """``evaluate`` of the simulated archive, with true masks, truth images and MLflow: report under archive/report."""
    from ctharmony.evaluate.run import evaluate

    sim = archive / "sim"
    return evaluate([archive / "results.parquet"], archive / "report", truth=sim / "masks",
                    truth_images=sim / "truth", experiment=EXPERIMENT)


