from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from ctharmony.evaluate import stats


def test_ccc_by_hand_on_a_small_table():
    # x = 1 2 3 4, y = 2 3 3 5: means 2.5, 3.25; variances (n) 5/4, 19/16; covariance 9/8;
    # CCC = 2 (9/8) / (5/4 + 19/16 + (3/4)²) = (9/4) / 3 = 0.75 exactly.
    result = stats.lins_ccc([1, 2, 3, 4], [2, 3, 3, 5])
    assert result.ccc == pytest.approx(0.75, abs=1e-12)
    assert result.pearson_r == pytest.approx(1.125 / math.sqrt(1.25 * 1.1875))
    assert result.n == 4
    # Lin (1989) eq. for the variance of the CCC itself, then the delta method onto z = atanh(CCC):
    p, r, n = 0.75, result.pearson_r, 4
    u = 0.75 / (1.25 * 1.1875) ** 0.25
    var_p = ((1 - r**2) * p**2 * (1 - p**2) / r**2 + 2 * p**3 * (1 - p) * u**2 / r
             - p**4 * u**4 / (2 * r**2)) / (n - 2)
    half = 1.959963984540054 * math.sqrt(var_p) / (1 - p**2)
    assert result.ci_low == pytest.approx(math.tanh(math.atanh(p) - half), rel=1e-9)
    assert result.ci_high == pytest.approx(math.tanh(math.atanh(p) + half), rel=1e-9)
    assert result.ci_low < 0.75 < result.ci_high


def test_ccc_properties_and_degenerate_cases():
    rng = np.random.default_rng(1)
    x = rng.normal(1500, 200, 30)
    assert stats.lins_ccc(x, x).ccc == pytest.approx(1.0)
    shifted = stats.lins_ccc(x, x + 100)  # perfect correlation, a bias: concordance drops, r does not
    assert shifted.pearson_r == pytest.approx(1.0) and shifted.ccc < 0.9
    noisy = stats.lins_ccc(x, x + rng.normal(0, 50, 30))
    assert noisy.ccc <= abs(noisy.pearson_r) + 1e-12
    empty_masks = stats.lins_ccc(np.zeros(10), x[:10])  # M40-like failure: all volumes 0
    assert empty_masks.ccc == pytest.approx(0.0) and math.isnan(empty_masks.ci_low)
    assert math.isnan(stats.lins_ccc([5, 5, 5], [5, 5, 5]).ccc)
    assert math.isnan(stats.lins_ccc([1.0], [2.0]).ccc)
    dropped = stats.lins_ccc([1, 2, 3, 4, np.nan], [2, 3, 3, 5, 7])
    assert dropped.n == 4 and dropped.ccc == pytest.approx(0.75)


def test_ccc_interval_covers_the_population_value():
    """Monte Carlo: the 95 % CI covers the true CCC about 95 % of the time (Lin's asymptotics, n = 40)."""
    rng = np.random.default_rng(7)
    cov = np.array([[1.0, 0.8], [0.8, 1.2]])
    shift = 0.3
    true_ccc = 2 * 0.8 / (1.0 + 1.2 + shift**2)
    hits = 0
    trials = 600
    for _ in range(trials):
        xy = rng.multivariate_normal([0.0, shift], cov, size=40)
        result = stats.lins_ccc(xy[:, 0], xy[:, 1])
        hits += result.ci_low <= true_ccc <= result.ci_high
    assert 0.91 <= hits / trials <= 0.98


def test_bland_altman_by_hand():
    # differences 1, 0, 2: bias 1, SD 1, limits 1 ± 1.96
    result = stats.bland_altman([10, 12, 14], [9, 12, 12])
    assert (result.mean_difference, result.sd_difference) == pytest.approx((1.0, 1.0))
    assert (result.loa_low, result.loa_high) == pytest.approx((-0.96, 2.96))
    # as % of the reference: 10, -10, 20 -> bias 20/3, SD sqrt(700/3)
    ratio = stats.bland_altman([11, 9, 12], [10, 10, 10], percent_of=[10, 10, 10])
    assert ratio.mean_difference == pytest.approx(20 / 3)
    assert ratio.sd_difference == pytest.approx(math.sqrt(700 / 3))
    assert ratio.loa_high == pytest.approx(20 / 3 + 1.96 * math.sqrt(700 / 3))
    with pytest.raises(ValueError, match="differ in length"):
        stats.bland_altman([1, 2], [1])


def test_paired_ttest_matches_scipy_and_the_formula():
    a = np.array([0.91, 0.88, 0.95, 0.90, 0.87, 0.93])
    b = np.array([0.05, 0.12, 0.02, 0.30, 0.01, 0.08])
    result = stats.paired_ttest(a, b)
    reference = scipy_stats.ttest_rel(a, b)
    assert result.statistic == pytest.approx(reference.statistic)
    assert result.pvalue == pytest.approx(reference.pvalue)
    d = a - b
    t = d.mean() / (d.std(ddof=1) / math.sqrt(d.size))
    assert result.statistic == pytest.approx(t)
    assert result.pvalue == pytest.approx(2 * scipy_stats.t.sf(abs(t), d.size - 1))
    assert math.isnan(stats.paired_ttest([1, 2, 3], [1, 2, 3]).pvalue)  # no variation: undefined
    assert math.isnan(stats.paired_ttest([1], [2]).pvalue)


def test_mean_sd():
    assert stats.mean_sd([1, 2, 3, np.nan]) == pytest.approx((2.0, 1.0, 3))
    mean, sd, n = stats.mean_sd([np.nan])
    assert math.isnan(mean) and math.isnan(sd) and n == 0
