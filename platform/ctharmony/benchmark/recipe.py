"""The real-anatomy training recipe against the phantom-only one: paired differences and the issue's targets.

The recipe's exams are the same exams as the phantom-only recipe's (the same test archives, converted by
other models), reported under the cohort ``"<cohort> · real-anatomy training"``
(:func:`ctharmony.benchmark.design.recipe_cohort`). A comparison is *real-anatomy recipe minus phantom-only*
per cohort and protocol for the harmonized Dice against the truth, paired by exam and training seed, with the
cohort's bootstrap draws (:meth:`.pooled.Pooled.between`): ``real anatomy better`` when its CI lies above 0,
``real anatomy worse`` when below, else ``undecided``.

Targets, all on the real-anatomy recipe (three-way verdicts from the CIs, :mod:`.verdicts`):

- the reference segmenter on original M80, Dice vs truth, real cohort: >= 0.90;
- harmonized Dice vs truth on the worst protocol (lowest mean, reference left out), real cohort: >= 0.90;
- the GAN not below the best baseline on the verdict protocol (Dice vs truth, GAN minus best, real cohort):
  met when the CI of the difference lies at or above 0, not met when below, else undecided;
- harmonized liver noise SD within 25 % of the original reference's, every protocol, real cohort;
- no synthetic / unseen-site figure worse than phantom-only beyond its CI: not met when the CI of some
  protocol's difference lies below 0, met otherwise (the figure shown is the lowest difference).

Example:
    >>> recipe_verdict(0.01, 0.04), recipe_verdict(-0.05, -0.01), recipe_verdict(-0.01, 0.02)
    ('real anatomy better', 'real anatomy worse', 'undecided')
"""

from __future__ import annotations

from typing import Any

from ctharmony.benchmark.design import REAL_RECIPE, recipe_cohort
from ctharmony.benchmark.pooled import Pooled, figure
from ctharmony.benchmark.table import Target, json_number, noise_band_target, threshold_target
from ctharmony.benchmark.verdicts import MET, NOT_MEASURED, NOT_MET, PRIMARY, UNDECIDED, best_baseline, target_verdict
from ctharmony.evaluate.naming import HARMONIZED, ORIGINAL

BETTER, WORSE = "real anatomy better", "real anatomy worse"
PREFIX = "real-anatomy recipe: "


def recipe_verdict(low: float | None, high: float | None) -> str:
    """``real anatomy better`` / ``worse`` / ``undecided`` from the CI of the recipe minus phantom-only."""
    if low is None or high is None:
        return NOT_MEASURED
    return BETTER if low > 0 else WORSE if high < 0 else UNDECIDED


def _protocols(pooled: Pooled, cohort: str) -> list[str]:
    return sorted(str(p) for p in pooled.exams.loc[pooled.exams["cohort"] == cohort, "protocol"].unique())


def recipe_comparisons(pooled: Pooled, recipe: str = REAL_RECIPE, method: str = HARMONIZED,
                       metric: str = PRIMARY) -> list[dict[str, Any]]:
    """``recipe`` minus phantom-only per cohort (those converted by both) and protocol: ``metric`` of ``method``,
    paired by exam and seed, with CI, p and verdict."""
    out = []
    for cohort in pooled.cohorts():
        other = recipe_cohort(cohort, recipe)
        if other not in pooled.cohorts():
            continue
        for protocol in _protocols(pooled, cohort):
            f = figure(pooled.between(other, cohort, protocol, method, metric), with_p=True)
            out.append({"cohort": cohort, "recipe": recipe, "protocol": protocol, "method": method,
                        metric: f | {"verdict": recipe_verdict(f["ci_low"], f["ci_high"])}})
    return out


def recipe_targets(pooled: Pooled, comparisons: list[dict[str, Any]], reference: str, real: str,
                   others: tuple[str, ...], protocol: str = "M40", recipe: str = REAL_RECIPE) -> list[Target]:
    """The real-anatomy recipe's targets (module docstring); ``others``: the cohorts without a real test
    patient (synthetic, unseen site) where it must not do worse than phantom-only."""
    out: list[Target] = []
    cohort = recipe_cohort(real, recipe)
    if cohort in pooled.cohorts():
        out.append(threshold_target(f"{PREFIX}reference segmenter on original {reference}, Dice vs truth", cohort,
                                    pooled.interval(cohort, reference, ORIGINAL, PRIMARY), ">= 0.90", 0.90,
                                    "each real case segmented by the segmenter trained without it"))
        scored = [(ci.mean, p) for p in _protocols(pooled, cohort) if p != reference
                  and (ci := pooled.interval(cohort, p, HARMONIZED, PRIMARY)).n_exams]
        name = f"{PREFIX}harmonized worst-protocol Dice vs truth"
        if scored:
            worst = min(scored)[1]
            out.append(threshold_target(name, cohort, pooled.interval(cohort, worst, HARMONIZED, PRIMARY),
                                        ">= 0.90", 0.90, f"worst protocol by mean Dice vs truth: {worst}"))
        else:
            out.append(Target(name, cohort, None, ">= 0.90", NOT_MEASURED, "no protocol"))
        out.append(gan_not_below_best(pooled, cohort, protocol))
        out.append(noise_band_target(pooled, cohort, reference, "noise_sd_hu", "noise SD", 0.25,
                                     name_prefix=PREFIX))
    out.append(no_worse_than_phantom_only(comparisons, [recipe_cohort(c, recipe) for c in others], others))
    return out


def gan_not_below_best(pooled: Pooled, cohort: str, protocol: str) -> Target:
    """GAN minus the best baseline (highest mean Dice vs truth on ``protocol``) >= 0, decided by its CI."""
    name, threshold = f"{PREFIX}GAN not below the best baseline on {protocol}", ">= 0 Dice vs truth"
    best = best_baseline(pooled, cohort, protocol)
    if best is None:
        return Target(name, cohort, None, threshold, NOT_MEASURED, "no baseline or protocol")
    gain = figure(pooled.difference(cohort, protocol, HARMONIZED, best, PRIMARY), with_p=True)
    return Target(name, cohort, gain["mean"], threshold, target_verdict(gain["ci_low"], gain["ci_high"], 0.0),
                  f"best baseline {best}: GAN minus it (p {gain['p']})", gain["ci_low"], gain["ci_high"])


def no_worse_than_phantom_only(comparisons: list[dict[str, Any]], cohorts: list[str],
                               base: tuple[str, ...]) -> Target:
    """Not met when some comparison on ``base`` cohorts has its CI below 0, met otherwise; the value shown is
    the lowest difference."""
    name = f"{PREFIX}no synthetic / unseen-site figure worse than phantom-only"
    rows = [c for c in comparisons if c["cohort"] in base and c[PRIMARY]["mean"] is not None]
    where = ", ".join(cohorts) or "-"
    if not rows:
        return Target(name, where, None, "no Δ CI below 0", NOT_MEASURED, "no synthetic or unseen-site exams")
    lowest = min(rows, key=lambda c: c[PRIMARY]["mean"])
    worse = [f"{c['cohort']} {c['protocol']}" for c in rows if c[PRIMARY]["verdict"] == WORSE]
    f = lowest[PRIMARY]
    detail = (f"harmonized Dice vs truth, recipe minus phantom-only, {len(rows)} cohort x protocol pairs; lowest: "
              f"{lowest['cohort']} {lowest['protocol']}; worse beyond the CI: {', '.join(worse) or 'none'}")
    return Target(name, where, json_number(f["mean"]), "no Δ CI below 0", NOT_MET if worse else MET, detail,
                  f["ci_low"], f["ci_high"])
