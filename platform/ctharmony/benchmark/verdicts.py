"""Paired comparisons of the GAN with each baseline, and three-way verdicts from confidence intervals.

A comparison is ``harmonized - baseline`` per cohort and protocol, paired by exam and training seed,
with its bootstrap CI and p-value (:class:`.pooled.Pooled`). Its verdict: ``GAN better`` when the CI
lies above 0, ``GAN worse`` when below, else ``undecided``. A threshold target is ``met`` only when the
CI clears its bound, ``not met`` when it clears the other side, else ``undecided``.

Example:
    >>> verdict(0.01, 0.03), verdict(-0.02, 0.01), target_verdict(0.06, 0.09, 0.05), target_verdict(0.0, 0.06, 0.05)
    ('GAN better', 'undecided', 'met', 'undecided')
"""

from __future__ import annotations

from typing import Any

from ctharmony.benchmark.pooled import Pooled, figure
from ctharmony.evaluate.naming import HARMONIZED, ORIGINAL

PRIMARY = "dice_truth"  # Dice against the simulation's true mask
COMPARED = ("dice_truth", "dice", "mae_t80_hu")
MET, NOT_MET, UNDECIDED, NOT_MEASURED = "met", "not met", "undecided", "not measured"


def verdict(low: float | None, high: float | None, lower_is_better: bool = False) -> str:
    """``GAN better`` / ``GAN worse`` / ``undecided`` from the CI of GAN minus a baseline."""
    if low is None or high is None:
        return NOT_MEASURED
    if lower_is_better:
        low, high = -high, -low
    return "GAN better" if low > 0 else "GAN worse" if high < 0 else UNDECIDED


def target_verdict(low: float | None, high: float | None, bound: float, at_least: bool = True) -> str:
    """``met`` when the CI clears ``bound`` on the wanted side, ``not met`` when on the other, else undecided."""
    if low is None or high is None:
        return NOT_MEASURED
    if not at_least:
        low, high, bound = -high, -low, -bound
    return MET if low >= bound else NOT_MET if high < bound else UNDECIDED


def baselines(pooled: Pooled, cohort: str) -> list[str]:
    """The baseline methods of a cohort (every method but original and harmonized)."""
    methods = pooled.exams.loc[pooled.exams["cohort"] == cohort, "method"].unique()
    return sorted(set(map(str, methods)) - {ORIGINAL, HARMONIZED})


def comparisons(pooled: Pooled, reference: str) -> list[dict[str, Any]]:
    """GAN minus each baseline, per cohort, non-reference protocol and metric of :data:`COMPARED`."""
    out = []
    for cohort in pooled.cohorts():
        protocols = sorted(pooled.exams.loc[pooled.exams["cohort"] == cohort, "protocol"].unique())
        for protocol in (p for p in protocols if p != reference):
            for baseline in baselines(pooled, cohort):
                row: dict[str, Any] = {"cohort": cohort, "protocol": protocol, "baseline": baseline}
                for metric in COMPARED:
                    f = figure(pooled.difference(cohort, protocol, HARMONIZED, baseline, metric), with_p=True)
                    row[metric] = f | {"verdict": verdict(f["ci_low"], f["ci_high"], metric == "mae_t80_hu")}
                out.append(row)
    return out


def best_baseline(pooled: Pooled, cohort: str, protocol: str) -> str | None:
    """The baseline with the highest mean Dice vs truth on ``protocol`` (None: no baseline measured there)."""
    scored = [(ci.mean, b) for b in baselines(pooled, cohort)
              if (ci := pooled.interval(cohort, protocol, b, PRIMARY)).n_exams]
    return max(scored)[1] if scored else None
