"""Image quality in the cohort tables, the report and MLflow, on the small simulated archive of conftest.py
(``archive``: original M80 / M40, converted ``t80``, ``noisy`` and ``smoothed`` series; ``evaluation``)."""

from __future__ import annotations

import logging
import math
import shutil

import numpy as np
import pandas as pd
import pytest

from ctharmony.evaluate import image_quality
from ctharmony.evaluate.cohort import build_cohort


def _summary(cohort, protocol: str, method: str) -> pd.Series:
    rows = cohort.summary[(cohort.summary["protocol"] == protocol) & (cohort.summary["method"] == method)]
    assert len(rows) == 1, (protocol, method)
    return rows.iloc[0]


def test_noise_sharpness_and_agreement_with_the_truth(evaluation, kit):
    cohort = evaluation.cohort
    exams = cohort.exams
    assert cohort.has_image_quality and len(exams) == 2 * 2 * 4  # exams x protocols x (original + 3 methods)
    noisy = _summary(cohort, "M80", "noisy")
    assert noisy["noise_sd_hu_mean"] == pytest.approx(kit.NOISE_SD, rel=0.15)
    assert noisy["noise_sd_hu_n"] == 2
    t80 = exams[exams["method"] == "t80"]
    assert (t80["mae_t80_hu"] < 1.0).all() and (t80["ssim_t80"] > 0.99).all()
    assert (exams[exams["method"] == "noisy"]["mae_t80_hu"] > kit.NOISE_SD / 2).all()
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


def test_without_truth_images_noise_is_the_roi_sd(archive, monkeypatch, kit):
    cohort = build_cohort([archive / "results.parquet"], truth=archive / "sim" / "masks")
    noisy = _summary(cohort, "M80", "noisy")
    assert noisy["noise_sd_hu_mean"] == pytest.approx(kit.NOISE_SD, rel=0.15)
    assert cohort.exams["mae_t80_hu"].isna().all() and cohort.exams["ssim_t80"].isna().all()
    # without true masks (and radiomics) nothing is read and the columns are NaN
    monkeypatch.setattr(image_quality, "read_volume", lambda *a: pytest.fail("an image was read"))
    plain = build_cohort([archive / "results.parquet"], radiomics=False)
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
