"""Radiomics reproducibility: per-feature CCC and shares against a numpy CCC, then in a cohort, report and MLflow."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ctharmony.evaluate import radiomics, reproducibility

NAMES = radiomics.feature_names()


def ccc(x: np.ndarray, y: np.ndarray) -> float:
    """Lin (1989) written out: 2 s_xy / (s_x² + s_y² + (x̄ - ȳ)²), n denominators."""
    sxy = ((x - x.mean()) * (y - y.mean())).mean()
    return 2 * sxy / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)


def feature_table(rng: np.random.Generator, exams: int = 6) -> tuple[pd.DataFrame, np.ndarray]:
    """M80 original (the reference), T80 noise-free (= reference + small noise), M40 'close' (reference + small
    noise on the GLCM features, unrelated values elsewhere) and M40 'far' (unrelated everywhere)."""
    reference = rng.normal(10.0, 3.0, (exams, len(NAMES)))
    glcm = np.array([name.startswith("glcm_") for name in NAMES])
    close = np.where(glcm, reference + rng.normal(0, 0.1, reference.shape), rng.normal(10.0, 3.0, reference.shape))
    values = {("M80", "original"): reference, ("T80", "noise-free"): reference + rng.normal(0, 0.1, reference.shape),
              ("M40", "close"): close, ("M40", "far"): rng.normal(10.0, 3.0, reference.shape)}
    rows = [{"exam": f"exam-{i + 1:03d}", "protocol": p, "method": m} | dict(zip(NAMES, v[i], strict=True))
            for (p, m), v in values.items() for i in range(exams)]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=1), reference  # any row order


def test_ccc_per_feature_and_shares_of_reproducible_features():
    rng = np.random.default_rng(2)
    features, reference = feature_table(rng)
    per_feature = reproducibility.feature_ccc(features, "M80")
    assert set(zip(per_feature["protocol"], per_feature["method"], strict=True)) == {
        ("M80", "original"), ("M40", "close"), ("M40", "far")}  # the truth is a reference, not a row
    close = features[features["method"] == "close"].sort_values("exam")[NAMES].to_numpy()
    truth = features[features["method"] == "noise-free"].sort_values("exam")[NAMES].to_numpy()
    got = per_feature[per_feature["method"] == "close"].set_index("feature")
    for k, name in enumerate(NAMES):
        assert got.loc[name, "ccc"] == pytest.approx(ccc(close[:, k], reference[:, k]))
        assert got.loc[name, "ccc_truth"] == pytest.approx(ccc(close[:, k], truth[:, k]))
    assert per_feature[per_feature["method"] == "original"]["ccc"].isna().all()  # not compared with itself
    summary = reproducibility.summarize(per_feature).set_index("method")
    expected = np.mean([ccc(close[:, k], reference[:, k]) >= 0.85 for k in range(len(NAMES))])
    assert summary.loc["close", "radiomics_reproducible"] == pytest.approx(expected)
    assert summary.loc["close", "radiomics_reproducible_glcm"] == 1.0
    assert summary.loc["close", "radiomics_reproducible"] < summary.loc["close", "radiomics_reproducible_glcm"]
    assert summary.loc["far", "radiomics_reproducible"] < 0.2
    assert summary.loc["close", "radiomics_features"] == len(NAMES) and summary.loc["close", "radiomics_n"] == 6
    assert summary.loc["original", "radiomics_reproducible_truth"] == 1.0  # M80 vs the noise-free T80
    assert math.isnan(summary.loc["original", "radiomics_reproducible"])
    assert summary.loc["close", "radiomics_ccc_median"] == pytest.approx(got["ccc"].median())


def test_a_feature_without_a_defined_ccc_is_not_counted():
    rng = np.random.default_rng(3)
    features, _ = feature_table(rng, exams=4)
    features["glcm_contrast"] = 5.0  # constant in every series: no variation to agree on
    features = features[features["method"] != "noise-free"]  # and no truth images
    summary = reproducibility.summarize(reproducibility.feature_ccc(features, "M80")).set_index("method")
    assert summary.loc["close", "radiomics_features"] == len(NAMES) - 1
    assert summary.loc["close", "radiomics_features_truth"] == 0
    assert math.isnan(summary.loc["close", "radiomics_reproducible_truth"])
    assert reproducibility.feature_ccc(pd.DataFrame(), "M80").empty


def test_simulated_cohort_has_radiomics_in_report_mlflow_and_csv(evaluation):
    import mlflow

    from ctharmony import tracking

    cohort = evaluation.cohort
    assert cohort.has_radiomics
    table = cohort.radiomics
    assert len(table) == 2 * 2 * 4 + 2  # exams x protocols x (original + 3 methods), + each exam's noise-free T80
    assert set(table.loc[table["method"] == "noise-free", "protocol"]) == {"T80"}
    summary = cohort.summary.set_index(["protocol", "method"])
    # the converted series that is the T80 itself agrees with the noise-free T80; the noisy one does not
    t80 = summary.loc[("M40", "t80"), "radiomics_reproducible_truth"]
    assert t80 > 0.9 and summary.loc[("M40", "noisy"), "radiomics_reproducible_truth"] < t80
    assert math.isnan(summary.loc[("M80", "original"), "radiomics_reproducible"])  # the reference itself
    md = evaluation.files.markdown.read_text(encoding="utf-8")
    page = evaluation.files.html.read_text(encoding="utf-8")
    for title in ("Radiomics reproducibility against the original M80", "against the noise-free T80"):
        assert title in md and title in page
    truth_table = md.split("against the noise-free T80")[1].splitlines()
    row = next(line for line in truth_table if line.startswith("| M40 | T80 |"))
    assert row.split(" | ")[4] == f"{100 * t80:.0f}"  # protocol, method, n, features, reproducible (%)
    assert "Radiomics: CCC per feature" in page and (evaluation.files.folder / "plots" / "radiomics_ccc.png").is_file()
    per_feature = pd.read_csv(evaluation.files.folder / "radiomics_ccc.csv")
    assert len(per_feature) == 2 * 4 * len(NAMES) and not (per_feature.astype(str) == "SIMULATED").any().any()
    tracking.configure()
    logged = mlflow.get_run(evaluation.run_id).data.metrics
    assert logged["radiomics_reproducible_truth/M40/t80"] == pytest.approx(t80)
    assert "radiomics_reproducible_glcm/M40/noisy" in logged and "radiomics_ccc_median/M40/noisy" in logged
