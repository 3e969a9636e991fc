"""Agreement statistics of the paper: Lin's CCC with 95 % CI, Bland-Altman, paired t-test, mean ± SD.

- Lin's concordance correlation coefficient (Lin 1989, Biometrics 45:255-268) with the asymptotic
  confidence interval on Fisher's z-transform ``Z = atanh(CCC)`` (variances with the ``n`` denominator,
  as in Lin's paper and R's ``epiR::epi.ccc``).
- Bland-Altman: mean difference and 95 % limits of agreement ``mean ± 1.96 SD`` (SD with ``n - 1``).
- Paired t-test: ``scipy.stats.ttest_rel``.

Example:
    >>> r = lins_ccc([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0])
    >>> round(r.ccc, 6), round(bland_altman([2.0, 4.0], [1.0, 3.0]).mean_difference, 6)
    (1.0, 1.0)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as _scipy_stats

NAN = float("nan")


@dataclasses.dataclass(frozen=True)
class CCCResult:
    """Lin's CCC and its confidence interval (NaN bounds when undefined, e.g. n < 3 or a constant series)."""

    ccc: float
    ci_low: float
    ci_high: float
    pearson_r: float
    n: int


@dataclasses.dataclass(frozen=True)
class BlandAltmanResult:
    """Mean difference (bias), its SD and the 95 % limits of agreement of ``a - b``."""

    mean_difference: float
    sd_difference: float
    loa_low: float
    loa_high: float
    n: int


@dataclasses.dataclass(frozen=True)
class TTestResult:
    """Paired t-test of ``a`` vs ``b`` (NaN when undefined, e.g. n < 2 or all differences equal)."""

    statistic: float
    pvalue: float
    n: int


def _pair(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.size} vs {b.size}")
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def lins_ccc(x: Sequence[float], y: Sequence[float], confidence: float = 0.95) -> CCCResult:
    """Lin's concordance correlation coefficient of paired measurements with its CI (non-finite pairs dropped).

    ``CCC = 2 s_xy / (s_x² + s_y² + (x̄ - ȳ)²)``. Two identical constant series give NaN (no variation to
    agree on); a CCC of exactly ±1 gives a zero-width interval.
    """
    a, b = _pair(x, y)
    n = int(a.size)
    if n < 2:
        return CCCResult(NAN, NAN, NAN, NAN, n)
    mx, my = a.mean(), b.mean()
    sx2, sy2 = a.var(), b.var()  # n denominator (Lin 1989)
    sxy = float(((a - mx) * (b - my)).mean())
    denominator = sx2 + sy2 + (mx - my) ** 2
    if denominator == 0:
        return CCCResult(NAN, NAN, NAN, NAN, n)
    ccc = float(2.0 * sxy / denominator)
    r = float(sxy / math.sqrt(sx2 * sy2)) if sx2 > 0 and sy2 > 0 else NAN
    low, high = _ccc_interval(ccc, r, mx - my, sx2, sy2, n, confidence)
    return CCCResult(ccc, low, high, r, n)


def _ccc_interval(ccc: float, r: float, mean_diff: float, sx2: float, sy2: float, n: int,
                  confidence: float) -> tuple[float, float]:
    """Asymptotic CI of Lin (1989) on the z-transform, back-transformed with tanh."""
    if abs(ccc) >= 1.0:
        return ccc, ccc
    if n < 3 or not math.isfinite(r) or r == 0:
        return NAN, NAN
    u2 = mean_diff**2 / math.sqrt(sx2 * sy2)  # u = (x̄ - ȳ) / sqrt(s_x s_y)
    var_z = (
        (1 - r**2) * ccc**2 / ((1 - ccc**2) * r**2)
        + 2 * ccc**3 * (1 - ccc) * u2 / (r * (1 - ccc**2) ** 2)
        - ccc**4 * u2**2 / (2 * r**2 * (1 - ccc**2) ** 2)
    ) / (n - 2)
    if var_z < 0:
        return NAN, NAN
    z = math.atanh(ccc)
    half = float(_scipy_stats.norm.ppf(0.5 + confidence / 2)) * math.sqrt(var_z)
    return math.tanh(z - half), math.tanh(z + half)


def bland_altman(a: Sequence[float], b: Sequence[float], percent_of: Sequence[float] | None = None,
                 limits_sd: float = 1.96) -> BlandAltmanResult:
    """Bland-Altman of ``a - b``: bias, SD (n - 1) and limits of agreement ``bias ± 1.96 SD``.

    With ``percent_of`` (e.g. the reference volumes) the differences are ``100 (a - b) / percent_of``,
    the paper's volume difference ratio.
    """
    x, y = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"paired samples differ in length: {x.size} vs {y.size}")
    diff = x - y
    if percent_of is not None:
        scale = np.asarray(percent_of, np.float64).ravel()
        if scale.shape != diff.shape:
            raise ValueError(f"percent_of has {scale.size} values for {diff.size} pairs")
        with np.errstate(divide="ignore", invalid="ignore"):
            diff = 100.0 * diff / scale
    diff = diff[np.isfinite(diff)]
    n = int(diff.size)
    if n == 0:
        return BlandAltmanResult(NAN, NAN, NAN, NAN, 0)
    bias = float(diff.mean())
    sd = float(diff.std(ddof=1)) if n > 1 else NAN
    return BlandAltmanResult(bias, sd, bias - limits_sd * sd, bias + limits_sd * sd, n)


def paired_ttest(a: Sequence[float], b: Sequence[float]) -> TTestResult:
    """Two-sided paired t-test of ``a`` vs ``b`` with ``scipy.stats.ttest_rel`` (non-finite pairs dropped)."""
    x, y = _pair(a, b)
    n = int(x.size)
    if n < 2 or np.all(x - y == (x - y)[0]):
        return TTestResult(NAN, NAN, n)
    result = _scipy_stats.ttest_rel(x, y)
    return TTestResult(float(result.statistic), float(result.pvalue), n)


def mean_sd(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, SD (n - 1) and count of the finite values (NaN where undefined)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return NAN, NAN, 0
    return float(v.mean()), (float(v.std(ddof=1)) if v.size > 1 else NAN), int(v.size)
