"""Two-level bootstrap of a mean over exams and training seeds: 95 % CI and a p-value.

A figure measured on exam ``e`` with the model of training seed ``s`` is ``x[e, s]`` (NaN: not measured).
Each replicate resamples the *clusters* of exams (an exam's patient: augmented copies of one real patient
form one cluster) and, independently, the seeds, both with replacement; its statistic is the mean of
the resampled cells (crossed, so both the exam-level and the seed-level variance enter the interval).
With one seed and one exam per cluster this is the ordinary percentile bootstrap
(``scipy.stats.bootstrap(method="percentile")``, the tests' reference).

The p-value of a difference is two-sided, from the replicates: twice the share on the far side of 0
(``(count + 1) / (B + 1)``, so never 0).

Example:
    >>> x = np.array([[0.90, 0.92], [0.80, 0.83], [0.85, 0.86]])
    >>> draws = draw(["a", "b", "c"], seeds=2, replicates=200, seed=0)
    >>> ci = interval(x, draws)
    >>> round(ci.mean, 4), ci.ci_low <= ci.mean <= ci.ci_high, ci.n_exams, ci.n_seeds
    (0.86, True, 3, 2)
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence

import numpy as np

NAN = float("nan")


@dataclasses.dataclass(frozen=True)
class Draws:
    """Bootstrap weights: how often each exam (``exams``, B x E) and each seed (``seeds``, B x S) is drawn."""

    exams: np.ndarray
    seeds: np.ndarray


@dataclasses.dataclass(frozen=True)
class Interval:
    """Mean over exams and seeds, its bootstrap CI and p-value (against 0), and the two spreads.

    ``sd_exam``: SD over exams of the seed-averaged values; ``sd_seed``: SD over seeds of the
    exam-averaged means (NaN with one of them).
    """

    mean: float
    ci_low: float
    ci_high: float
    p: float
    sd_exam: float
    sd_seed: float
    n_exams: int
    n_seeds: int


def draw(clusters: Sequence[object], seeds: int, replicates: int = 4000, seed: int = 0) -> Draws:
    """Weights of ``replicates`` resamples of the clusters (one label per exam) and of ``seeds`` seeds."""
    labels, index = np.unique(np.asarray([str(c) for c in clusters]), return_inverse=True)
    rng = np.random.default_rng(seed)
    picked = rng.integers(0, len(labels), (replicates, len(labels)))
    cluster_counts = np.stack([np.bincount(row, minlength=len(labels)) for row in picked])
    seed_counts = np.stack([np.bincount(row, minlength=seeds) for row in rng.integers(0, seeds, (replicates, seeds))])
    return Draws(exams=cluster_counts[:, index].astype(np.float64), seeds=seed_counts.astype(np.float64))


def replicate_means(x: np.ndarray, draws: Draws) -> np.ndarray:
    """The mean of every replicate (cells weighted by exam count x seed count; NaN cells left out)."""
    x = np.asarray(x, np.float64)
    finite = np.isfinite(x)
    total = np.einsum("be,es,bs->b", draws.exams, np.where(finite, x, 0.0), draws.seeds)
    count = np.einsum("be,es,bs->b", draws.exams, finite.astype(np.float64), draws.seeds)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1e-300), np.nan)


def interval(x: np.ndarray, draws: Draws, confidence: float = 0.95) -> Interval:
    """Mean of ``x`` (exams x seeds) with its percentile CI over ``draws`` and the two-sided p against 0."""
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape != (draws.exams.shape[1], draws.seeds.shape[1]):
        raise ValueError(f"values of shape {x.shape} do not match the draws' exams x seeds "
                         f"{(draws.exams.shape[1], draws.seeds.shape[1])}")
    finite = np.isfinite(x)
    if not finite.any():
        return Interval(NAN, NAN, NAN, NAN, NAN, NAN, 0, 0)
    mean = float(x[finite].mean())
    reps = replicate_means(x, draws)
    reps = reps[np.isfinite(reps)]
    tail = (1.0 - confidence) / 2.0
    low, high = (float(v) for v in np.quantile(reps, [tail, 1.0 - tail]))
    far = np.sum(reps <= 0.0) if mean > 0 else np.sum(reps >= 0.0) if mean < 0 else len(reps)
    p = min(1.0, 2.0 * (float(far) + 1.0) / (len(reps) + 1.0))
    with warnings.catch_warnings():  # an exam or seed with no finite value: NaN, said by the counts
        warnings.simplefilter("ignore", RuntimeWarning)
        per_exam, per_seed = np.nanmean(x, axis=1), np.nanmean(x, axis=0)
    return Interval(mean, low, high, p, _sd(per_exam), _sd(per_seed), int(finite.any(axis=1).sum()),
                    int(finite.any(axis=0).sum()))


def _sd(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(values.std(ddof=1)) if values.size > 1 else NAN

