from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ctharmony.archive import Volume
from ctharmony.baselines import (
    HISTOGRAM_NAME,
    LINEAR_NAME,
    HistogramMatchingBaseline,
    LinearRecalibrationBaseline,
    fit_baselines_from_catalog,
    fit_linear_coefficients,
    fit_reference_quantiles,
    is_baseline_file,
    load_baseline,
)


def phantom_m80(rng: np.random.Generator, shape=(6, 32, 32)) -> np.ndarray:
    """Air around a body of fat, soft tissue and a contrast-enhanced 'liver' (80 keV-like HU)."""
    hu = np.full(shape, -1000.0, np.float32)
    hu[:, 4:28, 4:28] = rng.normal(-100, 10, (shape[0], 24, 24))  # fat
    hu[:, 8:24, 8:24] = rng.normal(40, 10, (shape[0], 16, 16))  # soft tissue
    hu[:, 10:20, 10:22] = rng.normal(80, 10, (shape[0], 10, 12))  # liver
    return hu


def test_linear_recalibration_recovers_the_map(tmp_path):
    rng = np.random.default_rng(0)
    a, b = 2.1, -30.0  # M40-like = a * M80 + b + noise
    pairs = []
    for _ in range(3):
        m80 = phantom_m80(rng)
        pairs.append((a * m80 + b + rng.normal(0, 3, m80.shape), m80))
    model = LinearRecalibrationBaseline().fit({"M40": pairs})
    slope, intercept = model.coefficients["M40"]
    assert slope == pytest.approx(1 / a, rel=0.02)
    assert intercept == pytest.approx(-b / a, abs=2.0)
    m40 = pairs[0][0].astype(np.float32)
    converted = model(m40, protocol="M40")
    assert converted.shape == m40.shape and converted.dtype == np.float32
    body = pairs[0][1] > -500
    assert np.abs(converted[body] - pairs[0][1][body]).mean() < 5.0  # back on the 80 keV scale
    # torch (N, 1, H, W) in -> torch out; unfitted protocols pass through; JSON round trip
    slices = torch.from_numpy(m40[:, None])
    out = model.for_protocol("M40")(slices)
    assert isinstance(out, torch.Tensor) and out.shape == slices.shape
    assert np.allclose(out.numpy()[:, 0], converted, atol=1e-3)
    assert np.array_equal(model(m40, protocol="OPT"), m40)
    reloaded = load_baseline(model.save(tmp_path / "linear.json"))
    assert reloaded.coefficients["M40"] == pytest.approx(model.coefficients["M40"])
    assert reloaded.info == {"kind": "harmonizer", "name": LINEAR_NAME, "version": model.version,
                             "spec": LINEAR_NAME}
    # streamed fit (pair by pair) = least squares on all voxels at once
    x = np.concatenate([p[0].ravel() for p in pairs])
    y = np.concatenate([p[1].ravel() for p in pairs])
    streamed = LinearRecalibrationBaseline().fit({"M40": iter(pairs)}, fit_range=None).coefficients["M40"]
    assert streamed == pytest.approx(tuple(np.polyfit(x, y, 1)), rel=1e-9)
    with pytest.raises(ValueError, match="too few"):
        LinearRecalibrationBaseline().fit({"IR": [(np.zeros(4), np.zeros(4))]})


def test_histogram_matching_moves_the_liver_to_the_reference(tmp_path):
    rng = np.random.default_rng(1)
    references = [phantom_m80(rng) for _ in range(3)]
    model = HistogramMatchingBaseline().fit(references)
    m80 = phantom_m80(rng)
    m40 = np.where(m80 > -500, 2.4 * m80 - 20.0, m80).astype(np.float32)  # brighter, wider tissue scale
    liver = (slice(None), slice(10, 20), slice(10, 22))
    assert abs(m40[liver].mean() - m80[liver].mean()) > 80
    matched = model(m40)
    assert matched.shape == m40.shape and matched.dtype == np.float32
    assert abs(matched[liver].mean() - m80[liver].mean()) < 15.0
    assert abs(matched[m80 > -500].mean() - m80[m80 > -500].mean()) < 10.0
    batch = torch.from_numpy(m40[:, None].copy())  # (N, 1, H, W) slices
    assert np.allclose(model(batch).numpy()[:, 0], matched, atol=1e-3)
    path = model.save(tmp_path / "histogram.npz")
    reloaded = load_baseline(path)
    assert isinstance(reloaded, HistogramMatchingBaseline) and reloaded.version == model.version
    assert np.array_equal(reloaded(m40), matched)
    assert reloaded.info["name"] == HISTOGRAM_NAME
    with pytest.raises(ValueError, match="not a baseline"):
        load_baseline(tmp_path / "model.pt")


def test_fit_and_apply_are_apart(tmp_path):
    """The fit functions return plain statistics; the apply transforms built from them equal the fitted ones."""
    rng = np.random.default_rng(4)
    m80 = phantom_m80(rng)
    m40 = (1.8 * m80 + 25.0).astype(np.float32)
    quantiles = fit_reference_quantiles([m80], quantiles=257)
    assert quantiles.shape == (257,) and quantiles[0] == m80.min() and quantiles[-1] == m80.max()
    assert np.array_equal(HistogramMatchingBaseline(quantiles)(m40), HistogramMatchingBaseline().fit([m80],
                                                                                      quantiles=257)(m40))
    coefficients = fit_linear_coefficients({"M40": [(m40, m80)]}, fit_range=None)
    assert coefficients["M40"] == pytest.approx((1 / 1.8, -25.0 / 1.8), rel=1e-5)
    applied = LinearRecalibrationBaseline(coefficients)(m40, protocol="M40")
    assert np.abs(applied - m80).max() < 1e-2
    # the loader registry tells a baseline from other .npz / .json files by their content
    linear_path = LinearRecalibrationBaseline(coefficients).save(tmp_path / "linear.json")
    histogram_path = HistogramMatchingBaseline(quantiles).save(tmp_path / "histogram.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    (tmp_path / "other.json").write_text('{"kind": "something-else"}', encoding="utf-8")
    assert is_baseline_file(linear_path) and is_baseline_file(histogram_path)
    assert not is_baseline_file(tmp_path / "other.npz") and not is_baseline_file(tmp_path / "other.json")
    assert not is_baseline_file(tmp_path / "missing.json")


def test_fit_from_catalog_pairs_series_of_one_study(tmp_path):
    rng = np.random.default_rng(2)
    rows = []
    for study in ("s1", "s2"):
        m80 = phantom_m80(rng, (2, 32, 32))
        for protocol, hu in (("M80", m80), ("M40", 2.0 * m80 + 10.0)):
            path = tmp_path / f"{study}-{protocol}.npy"
            np.save(path, hu)
            rows.append({"series_key": f"{study}-{protocol}", "study_uid": study, "patient_key": study,
                         "protocol": protocol, "status": "ok", "files": [str(path)]})
    rows.append({"series_key": "s3-M40", "study_uid": "s3", "patient_key": "s3", "protocol": "M40", "status": "ok",
                 "files": [str(path)]})  # no reference
    catalog = tmp_path / "catalog.parquet"
    pd.DataFrame(rows).to_parquet(catalog)
    histogram, linear = fit_baselines_from_catalog(catalog, reader=lambda files: Volume(np.load(files[0])))
    assert linear.coefficients["M40"] == pytest.approx((0.5, -5.0), abs=1e-3)
    assert histogram.reference_quantiles is not None and histogram.reference_quantiles.min() == -1000.0
    with pytest.raises(ValueError, match="no study has a OPT"):
        fit_baselines_from_catalog(catalog, reference_protocol="OPT", reader=lambda f: Volume(np.load(f[0])))


def test_baselines_run_in_the_conversion_predictor():
    """The pipeline's HarmonizerPredictor takes a baseline as it takes an HUModel (module, info, slices)."""
    from ctharmony.infer import predictors

    rng = np.random.default_rng(3)
    m80 = phantom_m80(rng, (4, 32, 32))
    m40 = np.where(m80 > -500, 2.0 * m80 + 10.0, m80).astype(np.float32)
    histogram = HistogramMatchingBaseline().fit([m80])
    linear = LinearRecalibrationBaseline().fit({"M40": [(m40, m80)]})
    batch = {"series_key": np.array(["k"]), "hu": m40[None], "status": np.array(["ok"]), "reason": np.array([""])}
    for model, name in ((histogram, HISTOGRAM_NAME), (linear.for_protocol("M40"), LINEAR_NAME)):
        out = predictors.HarmonizerPredictor(model, batch_slices=2, device="cpu")(batch)
        assert out["status"].tolist() == ["ok"], out["reason"]
        assert out["model_name"].tolist() == [name] and out["model_version"].tolist() == [model.version]
        body = m80 > -500
        assert np.abs(out["hu_harmonized"][0][body] - m80[body]).mean() < 15.0
    # unbound, the per-protocol baseline is bound to each row's protocol by the predictor
    bound = predictors.HarmonizerPredictor(linear, device="cpu")({**batch, "protocol": np.array(["M40"])})
    assert bound["status"].tolist() == ["ok"], bound["reason"]
    assert np.abs(bound["hu_harmonized"][0][body] - m80[body]).mean() < 15.0
    failed = predictors.HarmonizerPredictor(linear, device="cpu")(batch)  # no protocol: a clear failure
    assert failed["status"].tolist() == ["failed"] and "needs the series' protocol" in failed["reason"][0]
