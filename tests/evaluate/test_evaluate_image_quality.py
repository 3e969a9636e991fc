"""Image quality in the cohort tables, the report and MLflow, on a small projection-domain simulated archive.

Two simulated patients (64 px, 4 slices) give the original M80 and M40 series, the true masks and the
noise-free T80. Converted series are written as real DICOM beside them: the T80 itself (``t80``), the
T80 plus Gaussian noise of a known SD (``noisy``) and the M80 smoothed in-plane (``smoothed``).
"""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from ctharmony.archive.reader import read_series
from ctharmony.evaluate import image_quality, metrics
from ctharmony.evaluate.cohort import build_cohort
from ctharmony.evaluate.run import evaluate

NOISE_SD = 25.0
SMOOTH_PX = 1.5
EXPERIMENT = "image-quality-test"


def _write_series(hu: np.ndarray, like, folder: Path, uid: str) -> None:
    from ctharmony.phantom.dicom_writer import write_ct_series

    tags = {"PatientID": "SIMULATED", "PatientName": "SIMULATED", "StudyInstanceUID": like.tags["StudyInstanceUID"],
            "SeriesInstanceUID": uid, "Modality": "CT", "SeriesDescription": folder.name}
    write_ct_series(hu, folder, tags=tags, origin=like.origin, spacing=like.spacing, positions=like.positions,
                    sop_uid_seed=f"{uid}|sop")


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """Simulated archive + results.parquet + catalog.parquet of its M80 / M40 originals and converted series."""
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


@pytest.fixture(scope="module")
def evaluation(archive):
    sim = archive / "sim"
    return evaluate([archive / "results.parquet"], archive / "report", truth=sim / "masks",
                    truth_images=sim / "truth", experiment=EXPERIMENT)


def _summary(cohort, protocol: str, method: str) -> pd.Series:
    rows = cohort.summary[(cohort.summary["protocol"] == protocol) & (cohort.summary["method"] == method)]
    assert len(rows) == 1, (protocol, method)
    return rows.iloc[0]


def test_noise_sharpness_and_agreement_with_the_truth(evaluation):
    cohort = evaluation.cohort
    exams = cohort.exams
    assert cohort.has_image_quality and len(exams) == 2 * 2 * 4  # exams x protocols x (original + 3 methods)
    noisy = _summary(cohort, "M80", "noisy")
    assert noisy["noise_sd_hu_mean"] == pytest.approx(NOISE_SD, rel=0.15)
    assert noisy["noise_sd_hu_n"] == 2
    t80 = exams[exams["method"] == "t80"]
    assert (t80["mae_t80_hu"] < 1.0).all() and (t80["ssim_t80"] > 0.99).all()
    assert (exams[exams["method"] == "noisy"]["mae_t80_hu"] > NOISE_SD / 2).all()
    original, smoothed = _summary(cohort, "M80", "original"), _summary(cohort, "M80", "smoothed")
    assert smoothed["edge_width_mm_mean"] > original["edge_width_mm_mean"]
    assert smoothed["nps_peak_lp_mm_mean"] < original["nps_peak_lp_mm_mean"]
    assert smoothed["nps_mean_lp_mm_mean"] < original["nps_mean_lp_mm_mean"]
    # ratios to the original reference protocol: 1 for itself, above 1 for the noisier 40 keV
    assert original["noise_sd_ratio_ref"] == pytest.approx(1.0) and original["nps_peak_ratio_ref"] == pytest.approx(1.0)
    m40 = _summary(cohort, "M40", "original")
    assert m40["noise_sd_ratio_ref"] == pytest.approx(m40["noise_sd_hu_mean"] / original["noise_sd_hu_mean"])
    assert m40["noise_sd_ratio_ref"] > 1.0


def test_report_and_mlflow_have_the_image_quality(evaluation):
    import mlflow

    from ctharmony import tracking

    md = evaluation.files.markdown.read_text(encoding="utf-8")
    page = evaluation.files.html.read_text(encoding="utf-8")
    title = "Image quality: noise, noise texture and sharpness per protocol and method"
    assert title in md and title in page and "edge spread function" in md
    noisy = _summary(evaluation.cohort, "M80", "noisy")
    row = next(line for line in md.splitlines() if line.startswith("| M80 | Noisy |"))
    assert f"{noisy['noise_sd_hu_mean']:.1f} ± {noisy['noise_sd_hu_sd']:.1f}" in row
    assert f"{noisy['noise_sd_ratio_ref']:.2f}" in row
    assert "SIMULATED" not in md and "SIMULATED" not in page
    tracking.configure()
    run = mlflow.get_run(evaluation.run_id)
    logged = run.data.metrics
    assert logged["noise_sd_hu/M80/noisy"] == pytest.approx(noisy["noise_sd_hu_mean"])
    assert logged["mae_t80_hu/M80/t80"] < 1.0
    assert logged["noise_sd_ratio_ref/M40/original"] > 1.0
    for name in ("nps_peak_lp_mm", "nps_mean_lp_mm", "edge_width_mm", "ssim_t80", "nps_peak_ratio_ref"):
        assert f"{name}/M80/smoothed" in logged, name


def test_without_truth_images_noise_is_the_roi_sd(archive, monkeypatch):
    cohort = build_cohort([archive / "results.parquet"], truth=archive / "sim" / "masks")
    noisy = _summary(cohort, "M80", "noisy")
    assert noisy["noise_sd_hu_mean"] == pytest.approx(NOISE_SD, rel=0.15)
    assert cohort.exams["mae_t80_hu"].isna().all() and cohort.exams["ssim_t80"].isna().all()
    # without true masks nothing is read and the columns are NaN
    monkeypatch.setattr(image_quality, "read_volume", lambda *a: pytest.fail("an image was read"))
    plain = build_cohort([archive / "results.parquet"])
    assert not plain.has_image_quality and plain.exams["noise_sd_hu"].isna().all()
    assert plain.summary["noise_sd_ratio_ref"].isna().all()


def test_a_truth_image_of_another_shape_is_named_and_left_out(archive, tmp_path, caplog):
    truth = tmp_path / "truth"
    shutil.copytree(archive / "sim" / "truth", truth)
    study = sorted(p.name for p in truth.iterdir())[0]
    with np.load(truth / study / "T80.npz") as data:
        np.savez_compressed(truth / study / "T80.npz", hu=data["hu"][:, :-2], positions=data["positions"])
    with caplog.at_level(logging.WARNING, logger="ctharmony.evaluate.image_quality"):
        cohort = build_cohort([archive / "results.parquet"], truth=archive / "sim" / "masks", truth_images=truth)
    exams = cohort.exams
    assert exams[exams["exam"] == "exam-001"]["mae_t80_hu"].isna().all()
    assert exams[exams["exam"] == "exam-002"]["mae_t80_hu"].notna().all()
    assert any("exam-001 M80" in r.getMessage() and "T80" in r.getMessage() for r in caplog.records)
    assert not any(study in r.getMessage() for r in caplog.records)  # no UID in the log
    assert math.isfinite(_summary(cohort, "M80", "noisy")["noise_sd_hu_mean"])  # ROI SD still measured


def test_cli_names_a_missing_truth_image_folder(archive, tmp_path):
    from typer.testing import CliRunner

    from ctharmony.cli import app

    missing = tmp_path / "no-truth"
    result = CliRunner().invoke(app, ["evaluate", "--results", str(archive / "results.parquet"), "--out",
                                      str(tmp_path / "r"), "--truth-images", str(missing), "--no-mlflow"])
    assert result.exit_code == 2 and "--truth-images" in result.output and str(missing) in result.output
