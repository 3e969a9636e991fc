"""The benchmark's table (subset x protocol x method x metric) and its targets, from cohort summaries.

A method's *worst protocol* is the non-reference protocol where its mean Dice (against the exam's
original reference-protocol mask, as in the paper) is lowest; the *hardest protocol* of a cohort is
the worst protocol of ``original`` (no conversion). Targets are those of the realistic benchmark (docs/benchmark.md).

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


def _number(value: Any) -> float | int | None:
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
        values = {name: _number(record[column]) for name, column in METRICS.items() if column in record}
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
    """One target of the issue, checked on one cohort."""

    name: str
    subset: str
    value: float | None
    threshold: str
    met: bool | None  # None: not measurable here (the detail says why)
    detail: str


def _at_least(value: float | None, bound: float) -> bool | None:
    return None if value is None else value >= bound


def check_targets(tables: dict[str, dict], reference: str, real: str, unseen: str, synthetic: str) -> list[Target]:
    """The issue's targets on the cohorts present (``tables``: subset -> subset_table)."""
    out: list[Target] = []
    for subset, table in tables.items():
        dice = _value(table, reference, HARMONIZED, "dice")
        volume = _value(table, reference, HARMONIZED, "abs_volume_pct")
        out.append(Target("reference passes unchanged: harmonized Dice", subset, dice, ">= 0.995",
                          _at_least(dice, 0.995), f"{reference} harmonized vs its original mask"))
        out.append(Target("reference passes unchanged: |volume difference| %", subset, volume, "<= 0.5",
                          None if volume is None else volume <= 0.5, f"{reference} harmonized vs its original mask"))
        out.append(_gan_vs_baselines(subset, table, reference))
    for subset, bound in ((real, 0.93), (unseen, 0.90)):
        if subset in tables:
            worst = worst_protocol(tables[subset], HARMONIZED, reference)
            value = None if worst is None else _value(tables[subset], worst, HARMONIZED, "dice")
            out.append(Target("harmonized worst-protocol Dice", subset, value, f">= {bound}",
                              _at_least(value, bound), f"worst protocol: {worst}"))
    if synthetic in tables:
        out.extend(_texture_targets(synthetic, tables[synthetic], reference))
    return out


def _gan_vs_baselines(subset: str, table: dict, reference: str) -> Target:
    hardest = worst_protocol(table, ORIGINAL, reference)
    name = "GAN vs best baseline on the hardest protocol"
    baselines = baselines_of(table)
    if hardest is None or not baselines:
        return Target(name, subset, None, ">= +0.05 Dice or <= 0.70 x MAE", None, "no baseline or protocol")
    gan_dice = _value(table, hardest, HARMONIZED, "dice")
    best_dice = max((d for b in baselines if (d := _value(table, hardest, b, "dice")) is not None), default=None)
    gan_mae = _value(table, hardest, HARMONIZED, "mae_t80_hu")
    best_mae = min((m for b in baselines if (m := _value(table, hardest, b, "mae_t80_hu")) is not None), default=None)
    gain = None if gan_dice is None or best_dice is None else round(gan_dice - best_dice, 4)
    ratio = None if gan_mae is None or not best_mae else round(gan_mae / best_mae, 4)
    met = None if gain is None and ratio is None else bool((gain or -1) >= 0.05 or (ratio or 9) <= 0.70)
    return Target(name, subset, gain, ">= +0.05 Dice or <= 0.70 x MAE", met,
                  f"hardest protocol {hardest}: Dice gain {gain}, MAE ratio to the best baseline {ratio}")


def _texture_targets(subset: str, table: dict, reference: str) -> list[Target]:
    out = []
    for metric, label in (("noise_sd_ratio_ref", "noise SD"), ("nps_peak_ratio_ref", "NPS peak")):
        ratios = {p: r for p in table if p != reference
                  and (r := _value(table, p, HARMONIZED, metric)) is not None}
        if not ratios:
            out.append(Target(f"harmonized {label} within 15 % of the reference's", subset, None, "<= 0.15", None,
                              "not measured (no true masks)"))
            continue
        protocol, ratio = max(ratios.items(), key=lambda item: abs(item[1] - 1.0))
        deviation = round(abs(ratio - 1.0), 4)
        out.append(Target(f"harmonized {label} within 15 % of the reference's", subset, deviation, "<= 0.15",
                          deviation <= 0.15, f"largest deviation: {protocol} at {ratio:.2f} x the reference's"))
    return out
