"""One seed's table (subset x protocol x method x metric, from cohort summaries) and the issue's targets.

A method's *worst protocol* is the non-reference protocol where its mean Dice (against the exam's
original reference-protocol mask, as in the paper) is lowest. Targets (docs/benchmark.md) are decided on the
figures pooled over exams and seeds (:mod:`.pooled`) by their CIs (:mod:`.verdicts`); GAN vs the best
baseline is decided on a protocol the plan fixes (M40), not on one picked from test results.

Example:
    >>> import pandas as pd
    >>> summary = pd.DataFrame({"protocol": ["M40", "M40", "M80"], "method": ["original", "harmonized", "harmonized"],
    ...                         "dice_mean": [0.1, 0.95, 1.0], "n": [3, 3, 3]})
    >>> table = subset_table(summary)
    >>> table["M40"]["harmonized"]["dice"], worst_protocol(table, "harmonized", "M80")
    (0.95, 'M40')
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd

from ctharmony.benchmark.pooled import Pooled, figure
from ctharmony.benchmark.verdicts import MET, NOT_MEASURED, NOT_MET, UNDECIDED, best_baseline, target_verdict
from ctharmony.evaluate.naming import HARMONIZED, ORIGINAL

# JSON name -> cohort summary column (ctharmony.evaluate.cohort.summarize)
METRICS = {
    "n": "n", "dice": "dice_mean", "dice_sd": "dice_sd", "dice_truth": "dice_truth_mean",
    "abs_volume_pct": "abs_volume_ratio_pct_mean", "ccc": "ccc", "ccc_truth": "ccc_truth",
    "noise_sd_hu": "noise_sd_hu_mean", "noise_sd_ratio_ref": "noise_sd_ratio_ref",
    "nps_peak_lp_mm": "nps_peak_lp_mm_mean", "nps_peak_ratio_ref": "nps_peak_ratio_ref",
    "nps_mean_lp_mm": "nps_mean_lp_mm_mean", "edge_width_mm": "edge_width_mm_mean",
    "mae_t80_hu": "mae_t80_hu_mean", "ssim_t80": "ssim_t80_mean",
    "radiomics_reproducible": "radiomics_reproducible", "radiomics_reproducible_truth": "radiomics_reproducible_truth",
    "radiomics_ccc_median": "radiomics_ccc_median", "radiomics_ccc_median_truth": "radiomics_ccc_median_truth",
}


def json_number(value: Any) -> float | int | None:
    """A JSON number: integers stay integers, floats are rounded to 4 decimals, NaN and None become None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(number):
        return None
    return int(number) if isinstance(value, (int, np.integer)) else round(number, 4)


def subset_table(summary: pd.DataFrame) -> dict[str, dict[str, dict[str, float | None]]]:
    """``{protocol: {method: {metric: value}}}`` from a cohort's per-protocol summary (missing -> None)."""
    table: dict[str, dict[str, dict[str, float | None]]] = {}
    for record in summary.to_dict("records"):
        values = {name: json_number(record[column]) for name, column in METRICS.items() if column in record}
        table.setdefault(str(record["protocol"]), {})[str(record["method"])] = values
    return table


def _value(table: dict, protocol: str, method: str, metric: str) -> float | None:
    return table.get(protocol, {}).get(method, {}).get(metric)


def worst_protocol(table: dict, method: str, reference: str) -> str | None:
    """The non-reference protocol with ``method``'s lowest mean Dice (None: no such protocol)."""
    scored = [(v, p) for p in table if p != reference and (v := _value(table, p, method, "dice")) is not None]
    return min(scored)[1] if scored else None


def baselines_of(table: dict) -> list[str]:
    """The baseline methods in a table (every method but original and harmonized)."""
    return sorted({m for rows in table.values() for m in rows} - {ORIGINAL, HARMONIZED})


@dataclasses.dataclass
class Target:
    """One target of the issue, checked on one cohort: the figure's mean, its 95 % CI and a three-way verdict."""

    name: str
    subset: str
    value: float | None
    threshold: str
    verdict: str  # met / not met / undecided (the CI straddles the bound) / not measured
    detail: str
    ci_low: float | None = None
    ci_high: float | None = None

    @property
    def met(self) -> bool | None:
        """True when met, False when not met, None when undecided or not measured."""
        return {MET: True, NOT_MET: False}.get(self.verdict)


def threshold_target(name: str, cohort: str, ci: Any, threshold: str, bound: float, detail: str,
                     at_least: bool = True) -> Target:
    """A target on one pooled figure: met / not met / undecided from its CI against ``bound``."""
    f = figure(ci)
    return Target(name, cohort, f["mean"], threshold, target_verdict(f["ci_low"], f["ci_high"], bound, at_least),
                  detail, f["ci_low"], f["ci_high"])


def check_targets(pooled: Pooled, reference: str, real: str, unseen: str, synthetic: str,
                  protocol: str = "M40") -> list[Target]:
    """The issue's targets on the cohorts present, each decided by its CI over exams and seeds."""
    out: list[Target] = []
    for cohort in pooled.cohorts():
        detail = f"{reference} harmonized vs its original mask"
        out.append(threshold_target("reference passes unchanged: harmonized Dice", cohort,
                                    pooled.interval(cohort, reference, HARMONIZED, "dice"), ">= 0.995", 0.995, detail))
        out.append(threshold_target("reference passes unchanged: |volume difference| %", cohort,
                                    pooled.interval(cohort, reference, HARMONIZED, "abs_volume_pct"), "<= 0.5", 0.5,
                                    detail, at_least=False))
        out.append(gan_vs_best_baseline(pooled, cohort, protocol))
    for cohort, bound in ((real, 0.93), (unseen, 0.90)):
        if cohort in pooled.cohorts():
            worst = _worst_protocol(pooled, cohort, reference)
            ci = pooled.interval(cohort, worst or reference, HARMONIZED, "dice")
            out.append(threshold_target("harmonized worst-protocol Dice", cohort, ci, f">= {bound}", bound,
                                        f"worst protocol by mean Dice vs ref: {worst}") if worst else
                       Target("harmonized worst-protocol Dice", cohort, None, f">= {bound}", NOT_MEASURED,
                              "no protocol"))
    if synthetic in pooled.cohorts():
        out.extend(_texture_targets(pooled, synthetic, reference))
    return out


def _worst_protocol(pooled: Pooled, cohort: str, reference: str) -> str | None:
    protocols = pooled.exams.loc[pooled.exams["cohort"] == cohort, "protocol"].unique()
    scored = [(ci.mean, str(p)) for p in protocols if p != reference
              and (ci := pooled.interval(cohort, str(p), HARMONIZED, "dice")).n_exams]
    return min(scored)[1] if scored else None


GAN_TARGET = "GAN vs best baseline"


def gan_vs_best_baseline(pooled: Pooled, cohort: str, protocol: str) -> Target:
    """Dice vs truth gain >= +0.05 over the best baseline, or MAE to T80 <= 0.70 x the best baseline's.

    Met when either branch's CI clears its bound, not met when both CIs fall on the other side, else
    undecided. The best baseline: the highest mean Dice vs truth on ``protocol``.
    """
    name, threshold = f"{GAN_TARGET} on {protocol}", ">= +0.05 Dice vs truth or <= 0.70 x MAE"
    best = best_baseline(pooled, cohort, protocol)
    if best is None:
        return Target(name, cohort, None, threshold, NOT_MEASURED, "no baseline or protocol")
    gain = figure(pooled.difference(cohort, protocol, HARMONIZED, best, "dice_truth"), with_p=True)
    ratio, low, high = pooled.ratio(cohort, (protocol, HARMONIZED), (protocol, best), "mae_t80_hu")
    branches = [target_verdict(gain["ci_low"], gain["ci_high"], 0.05),
                target_verdict(json_number(low), json_number(high), 0.70, at_least=False)]
    measured = [b for b in branches if b != NOT_MEASURED]
    result = (NOT_MEASURED if not measured else MET if MET in measured
              else NOT_MET if all(b == NOT_MET for b in measured) else UNDECIDED)
    detail = (f"best baseline {best}: Dice gain {gain['mean']} [{gain['ci_low']}, {gain['ci_high']}] "
              f"(p {gain['p']}); MAE ratio {json_number(ratio)} [{json_number(low)}, {json_number(high)}]")
    return Target(name, cohort, gain["mean"], threshold, result, detail, gain["ci_low"], gain["ci_high"])


def _texture_targets(pooled: Pooled, cohort: str, reference: str) -> list[Target]:
    return [noise_band_target(pooled, cohort, reference, metric, label, 0.15)
            for metric, label in (("noise_sd_hu", "noise SD"), ("nps_peak_lp_mm", "NPS peak"))]


def noise_band_target(pooled: Pooled, cohort: str, reference: str, metric: str, label: str, band: float,
                      name_prefix: str = "") -> Target:
    """Harmonized ``metric`` over the original reference's within ``1 +- band`` on every non-reference protocol:
    met when every protocol's ratio CI lies inside the band, not met when the largest deviation's CI lies
    outside, else undecided."""
    protocols = [str(p) for p in pooled.exams.loc[pooled.exams["cohort"] == cohort, "protocol"].unique()
                 if p != reference]
    low_bound, high_bound = round(1.0 - band, 4), round(1.0 + band, 4)
    name = f"{name_prefix}harmonized {label} within {round(band * 100)} % of the reference's"
    threshold = f"{low_bound:.2f}-{high_bound:.2f} x"
    ratios = {p: r for p in protocols
              if np.isfinite((r := pooled.ratio(cohort, (p, HARMONIZED), (reference, ORIGINAL), metric))[0])}
    if not ratios:
        return Target(name, cohort, None, threshold, NOT_MEASURED, "not measured (no true masks)")
    protocol, (ratio, low, high) = max(ratios.items(), key=lambda item: abs(item[1][0] - 1.0))
    inside = all(low_bound <= r[1] and r[2] <= high_bound for r in ratios.values())
    outside = low > high_bound or high < low_bound
    return Target(name, cohort, json_number(ratio), threshold, MET if inside else NOT_MET if outside else UNDECIDED,
                  f"ratio to the original {reference}'s; largest deviation: {protocol} (met: every protocol's "
                  "CI inside the band)", json_number(low), json_number(high))
