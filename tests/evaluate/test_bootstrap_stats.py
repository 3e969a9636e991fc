"""The two-level bootstrap (exams by cluster x seeds) against scipy's one-level percentile bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from ctharmony.evaluate import bootstrap

B = 20000


def scipy_ci(values: np.ndarray) -> tuple[float, float]:
    result = scipy_stats.bootstrap((values,), np.mean, n_resamples=B, method="percentile", confidence_level=0.95,
                                   random_state=np.random.default_rng(1))
    return result.confidence_interval.low, result.confidence_interval.high


def test_one_seed_one_exam_per_cluster_is_the_percentile_bootstrap() -> None:
    values = np.random.default_rng(3).normal(0.8, 0.05, 15)
    ci = bootstrap.interval(values[:, None], bootstrap.draw([f"e{i}" for i in range(15)], 1, B, seed=0))
    low, high = scipy_ci(values)
    tolerance = 0.05 * values.std(ddof=1) / np.sqrt(15) * 4  # Monte Carlo error of two 20000-draw quantiles
    assert ci.mean == pytest.approx(values.mean())
    assert ci.ci_low == pytest.approx(low, abs=tolerance) and ci.ci_high == pytest.approx(high, abs=tolerance)
    assert ci.sd_exam == pytest.approx(values.std(ddof=1)) and np.isnan(ci.sd_seed)
    assert (ci.n_exams, ci.n_seeds) == (15, 1)


def test_exams_of_one_patient_are_resampled_together() -> None:
    rng = np.random.default_rng(4)
    patients = rng.normal(0.0, 1.0, 10)
    exams = np.repeat(patients, 3) + rng.normal(0.0, 0.01, 30)  # 3 near-identical copies per patient
    clusters = np.repeat([f"p{i}" for i in range(10)], 3)
    grouped = bootstrap.interval(exams[:, None], bootstrap.draw(clusters, 1, B, seed=0))
    low, high = scipy_ci(exams.reshape(10, 3).mean(axis=1))  # equal clusters: the bootstrap of patient means
    width = high - low
    assert grouped.ci_low == pytest.approx(low, abs=0.05 * width)
    assert grouped.ci_high == pytest.approx(high, abs=0.05 * width)
    naive = bootstrap.interval(exams[:, None], bootstrap.draw([str(i) for i in range(30)], 1, B, seed=0))
    assert naive.ci_high - naive.ci_low < 0.7 * width  # treating copies as patients would overstate certainty


def test_seed_variance_enters_the_interval() -> None:
    seed_effect = np.random.default_rng(5).normal(0.0, 0.02, 8)
    x = 0.9 + np.zeros((6, 1)) + seed_effect[None, :]  # every exam alike; models differ by seed
    ci = bootstrap.interval(x, bootstrap.draw([f"e{i}" for i in range(6)], 8, B, seed=0))
    low, high = scipy_ci(x.mean(axis=0))
    width = high - low
    assert width > 0 and ci.ci_low == pytest.approx(low, abs=0.05 * width)
    assert ci.ci_high == pytest.approx(high, abs=0.05 * width)
    assert ci.sd_seed == pytest.approx(seed_effect.std(ddof=1)) and ci.sd_exam == pytest.approx(0.0, abs=1e-12)


def test_p_value_of_a_difference() -> None:
    draws = bootstrap.draw([f"e{i}" for i in range(12)], 3, 2000, seed=0)
    rng = np.random.default_rng(6)
    clear = bootstrap.interval(0.05 + rng.normal(0.0, 0.01, (12, 3)), draws)
    assert clear.ci_low > 0 and clear.p == pytest.approx(2 / 2001)  # none on the far side: the floor, never 0
    noise = rng.normal(0.0, 0.05, (12, 3))
    noise -= noise.mean()
    assert bootstrap.interval(noise + 1e-9, draws).p > 0.5


def test_missing_cells_are_left_out_and_shapes_checked() -> None:
    x = np.array([[1.0, np.nan], [3.0, 5.0]])
    draws = bootstrap.draw(["a", "b"], 2, 100, seed=0)
    ci = bootstrap.interval(x, draws)
    assert ci.mean == pytest.approx(3.0) and (ci.n_exams, ci.n_seeds) == (2, 2)
    assert np.isnan(bootstrap.interval(np.full((2, 2), np.nan), draws).mean)
    with pytest.raises(ValueError, match="do not match"):
        bootstrap.interval(np.zeros((3, 2)), draws)
