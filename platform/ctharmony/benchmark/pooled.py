"""Figures pooled over exams and training seeds: mean, 95 % CI and spreads per cohort x protocol x method.

Input: the per-exam tables of every training seed (:func:`ctharmony.evaluate.cohort.exam_table` rows plus
``seed``, ``cohort`` and ``cluster``: the exam's patient, i.e. its real case for real anatomy, itself
otherwise). One set of bootstrap draws per cohort (:mod:`ctharmony.evaluate.bootstrap`) serves every
protocol, method and metric of the cohort, so paired differences resample the same exams and seeds.

Example:
    >>> rows = [{"seed": s, "cohort": "c", "cluster": e, "exam": e, "protocol": "M40", "method": "harmonized",
    ...          "dice_truth": 0.9 + 0.01 * s} for s in (0, 1) for e in ("a", "b")]
    >>> pooled = Pooled(pd.DataFrame(rows), replicates=100)
    >>> pooled.interval("c", "M40", "harmonized", "dice_truth").mean
    0.905
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ctharmony.evaluate import bootstrap

# JSON name -> per-exam column: Dice against the simulation's true mask (primary), against the original
# reference-protocol mask (the paper's measure), volume error, MAE to the noise-free T80, liver noise SD.
METRICS = {"dice_truth": "dice_truth", "dice": "dice", "abs_volume_pct": "abs_volume_ratio_pct",
           "mae_t80_hu": "mae_t80_hu", "noise_sd_hu": "noise_sd_hu"}


class Pooled:
    """Per cohort: its exams, seeds and bootstrap draws; figures and paired differences on demand."""

    def __init__(self, exams: pd.DataFrame, replicates: int = 4000, seed: int = 0, confidence: float = 0.95) -> None:
        self.exams = exams
        self.confidence = confidence
        self.seeds = sorted(exams["seed"].unique())
        self._index: dict[str, list[str]] = {}
        self._clusters: dict[str, list[str]] = {}
        self._draws: dict[str, bootstrap.Draws] = {}
        for cohort, rows in exams.groupby("cohort", sort=True):
            clusters = rows.drop_duplicates("exam").sort_values("exam")
            self._index[str(cohort)] = list(clusters["exam"])
            self._clusters[str(cohort)] = [str(c) for c in clusters["cluster"]]
            self._draws[str(cohort)] = bootstrap.draw(list(clusters["cluster"]), len(self.seeds), replicates, seed)

    def cohorts(self) -> list[str]:
        return list(self._index)

    def values(self, cohort: str, protocol: str, method: str, metric: str) -> np.ndarray:
        """Exams x seeds of one figure (NaN where not measured)."""
        rows = self.exams[(self.exams["cohort"] == cohort) & (self.exams["protocol"] == protocol)
                          & (self.exams["method"] == method)]
        column = METRICS.get(metric, metric)
        if column not in rows:
            return np.full((len(self._index[cohort]), len(self.seeds)), np.nan)
        table = rows.pivot_table(index="exam", columns="seed", values=column, aggfunc="first", dropna=False)
        return table.reindex(index=self._index[cohort], columns=self.seeds).to_numpy(np.float64)

    def interval(self, cohort: str, protocol: str, method: str, metric: str) -> bootstrap.Interval:
        return bootstrap.interval(self.values(cohort, protocol, method, metric), self._draws[cohort], self.confidence)

    def difference(self, cohort: str, protocol: str, method: str, other: str, metric: str) -> bootstrap.Interval:
        """``method - other``, paired by exam and seed."""
        diff = self.values(cohort, protocol, method, metric) - self.values(cohort, protocol, other, metric)
        return bootstrap.interval(diff, self._draws[cohort], self.confidence)

    def between(self, cohort: str, other: str, protocol: str, method: str, metric: str) -> bootstrap.Interval:
        """``cohort - other`` for two cohorts of the same exams (e.g. one converted by another training recipe's
        models), paired by exam and seed, with ``other``'s bootstrap draws."""
        if self._index[cohort] != self._index[other] or self._clusters[cohort] != self._clusters[other]:
            raise ValueError(f"cohorts {cohort!r} and {other!r} do not hold the same exams and patients")
        diff = self.values(cohort, protocol, method, metric) - self.values(other, protocol, method, metric)
        return bootstrap.interval(diff, self._draws[other], self.confidence)

    def ratio(self, cohort: str, a: tuple[str, str], b: tuple[str, str], metric: str) -> tuple[float, float, float]:
        """Mean of ``metric`` for ``a`` (protocol, method) over its mean for ``b``, and the ratio's percentile CI."""
        x, y = self.values(cohort, *a, metric), self.values(cohort, *b, metric)
        if not (np.isfinite(x).any() and np.isfinite(y).any()):
            return float("nan"), float("nan"), float("nan")
        draws = self._draws[cohort]
        with np.errstate(invalid="ignore", divide="ignore"):
            reps = bootstrap.replicate_means(x, draws) / bootstrap.replicate_means(y, draws)
        reps = reps[np.isfinite(reps)]
        tail = (1.0 - self.confidence) / 2.0
        low, high = np.quantile(reps, [tail, 1.0 - tail])
        return float(np.nanmean(x) / np.nanmean(y)), float(low), float(high)

    def table(self, cohort: str) -> dict[str, dict[str, dict[str, Any]]]:
        """``{protocol: {method: {metric: {mean, ci_low, ci_high, sd_exam, sd_seed, n_exams, n_seeds}}}}``."""
        rows = self.exams[self.exams["cohort"] == cohort]
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for (protocol, method), _ in rows.groupby(["protocol", "method"], sort=True):
            figures = {}
            for metric in METRICS:
                ci = self.interval(cohort, str(protocol), str(method), metric)
                if ci.n_exams:
                    figures[metric] = figure(ci)
            out.setdefault(str(protocol), {})[str(method)] = figures
        return out


def figure(ci: bootstrap.Interval, with_p: bool = False) -> dict[str, Any]:
    """An interval as JSON (4 decimals; NaN -> None)."""
    names = ["mean", "ci_low", "ci_high", "sd_exam", "sd_seed"] + (["p"] if with_p else [])
    out: dict[str, Any] = {k: _round(getattr(ci, k)) for k in names}
    return out | {"n_exams": ci.n_exams, "n_seeds": ci.n_seeds}


def _round(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 4)


def exams_frame(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate per-seed, per-archive exam tables (each already carrying seed, cohort, cluster, exam)."""
    frame = pd.concat(tables, ignore_index=True)
    missing = {"seed", "cohort", "cluster", "exam", "protocol", "method"} - set(frame.columns)
    if missing:
        raise ValueError(f"exam tables lack column(s) {', '.join(sorted(missing))}")
    return frame

