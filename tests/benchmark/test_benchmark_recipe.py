"""The real-anatomy recipe's statistics and plan, without training: the recipe-minus-phantom-only difference
against scipy and a hand-written two-level bootstrap, its verdicts and targets, the report's sections, and
the plan (stage list unchanged without it, an error with fewer than 2 real cases)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from ctharmony.benchmark.design import REAL, SYNTHETIC, UNSEEN, BenchmarkPlan, Subset, recipe_cohort
from ctharmony.benchmark.pooled import Pooled
from ctharmony.benchmark.recipe import PREFIX, recipe_comparisons, recipe_targets
from ctharmony.benchmark.workflow import _plan_json, benchmark_stages, write_outcome
from ctharmony.evaluate import bootstrap

REAL_DATA = Path(__file__).resolve().parents[2] / "data" / "real"
CASES = tuple((REAL_DATA / n, REAL_DATA / f"{n}-liver.nii.gz") for n in ("dcmqi-ct-3slice", "ts-example-ct"))
B = 20000


def rows(cohort: str, values: dict[tuple[str, str], np.ndarray], clusters: list[str] | None = None,
         noise: float = 10.0) -> pd.DataFrame:
    """Per-exam rows: ``values[(protocol, method)]`` exams x seeds of Dice vs truth (and vs ref)."""
    out = []
    for (protocol, method), table in values.items():
        for e in range(table.shape[0]):
            for s in range(table.shape[1]):
                exam, v = f"a/exam-{e:03d}", float(table[e, s])
                out.append({"seed": s, "cohort": cohort, "exam": exam, "cluster": clusters[e] if clusters else exam,
                            "patient_key": exam, "site": "s", "protocol": protocol, "method": method,
                            "dice_truth": v, "dice": v, "noise_sd_hu": noise, "volume_ml": 100.0 * v,
                            "reference_volume_ml": 100.0, "volume_diff_ml": 100.0 * v - 100.0,
                            "volume_ratio_pct": 100.0 * v - 100.0, "truth_volume_ml": 100.0, "mae_t80_hu": 5.0})
    table = pd.DataFrame(out)
    table["abs_volume_diff_ml"] = table["volume_diff_ml"].abs()
    table["abs_volume_ratio_pct"] = table["volume_ratio_pct"].abs()
    return table


def test_recipe_difference_is_the_paired_percentile_bootstrap() -> None:
    rng = np.random.default_rng(5)
    phantom = rng.uniform(0.7, 0.9, (15, 1))
    recipe = phantom + rng.normal(0.03, 0.02, (15, 1))
    frame = pd.concat([rows("c", {("M40", "harmonized"): phantom}),
                       rows(recipe_cohort("c"), {("M40", "harmonized"): recipe})])
    ci = Pooled(frame, replicates=B).between(recipe_cohort("c"), "c", "M40", "harmonized", "dice_truth")
    diff = (recipe - phantom)[:, 0]
    reference = scipy_stats.bootstrap((diff,), np.mean, n_resamples=B, method="percentile",
                                      random_state=np.random.default_rng(1)).confidence_interval
    tolerance = 4 * 0.05 * diff.std(ddof=1) / np.sqrt(15)  # Monte Carlo error of two 20000-draw quantiles
    assert ci.mean == pytest.approx(diff.mean())
    assert ci.ci_low == pytest.approx(reference.low, abs=tolerance)
    assert ci.ci_high == pytest.approx(reference.high, abs=tolerance)


def test_recipe_difference_resamples_patients_and_seeds_together_for_both_recipes() -> None:
    rng = np.random.default_rng(6)
    clusters = ["p0"] * 3 + ["p1"] * 3 + ["p2"] * 2
    phantom = rng.uniform(0.6, 0.9, (8, 3))
    recipe = phantom + rng.normal(0.02, 0.03, (8, 3))
    frame = pd.concat([rows("c", {("M40", "harmonized"): phantom}, clusters),
                       rows(recipe_cohort("c"), {("M40", "harmonized"): recipe}, clusters)])
    pooled = Pooled(frame, replicates=500, seed=3)
    ci = pooled.between(recipe_cohort("c"), "c", "M40", "harmonized", "dice_truth")
    # a second implementation: the same draws as explicit resampled cells, the paired difference recomputed
    draws = bootstrap.draw(clusters, 3, 500, seed=3)
    reps = []
    for b in range(500):
        exams = np.repeat(np.arange(8), draws.exams[b].astype(int))
        seeds = np.repeat(np.arange(3), draws.seeds[b].astype(int))
        reps.append(float((recipe[np.ix_(exams, seeds)] - phantom[np.ix_(exams, seeds)]).mean()))
    low, high = np.quantile(reps, [0.025, 0.975])
    assert ci.mean == pytest.approx(float((recipe - phantom).mean()))
    assert (ci.ci_low, ci.ci_high) == pytest.approx((low, high))
    with pytest.raises(ValueError, match="same exams"):
        Pooled(pd.concat([rows("c", {("M40", "harmonized"): phantom}, clusters),
                          rows(recipe_cohort("c"), {("M40", "harmonized"): recipe[:4]})]),
               replicates=10).between(recipe_cohort("c"), "c", "M40", "harmonized", "dice_truth")


def recipe_frame(real_gain: float, synthetic_gain: float) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    base = rng.uniform(0.80, 0.85, (6, 1)) + rng.normal(0, 0.003, (6, 2))
    parts = []
    for cohort, gain, clusters in ((REAL, real_gain, ["a"] * 3 + ["b"] * 3), (SYNTHETIC, synthetic_gain, None),
                                   (UNSEEN, 0.0, None)):
        for name, shift in ((cohort, 0.0), (recipe_cohort(cohort), gain)):
            reference = base + shift + 0.05
            parts.append(rows(name, {("M80", "original"): reference, ("M80", "harmonized"): reference,
                                     ("M40", "original"): base - 0.3, ("M40", "harmonized"): base + shift,
                                     ("M40", "linear-recalibration"): base - 0.02}, clusters))
    return pd.concat(parts, ignore_index=True)


def test_recipe_comparisons_and_targets_decide_from_their_cis() -> None:
    pooled = Pooled(recipe_frame(real_gain=0.10, synthetic_gain=-0.05), replicates=400)
    found = recipe_comparisons(pooled)
    assert {(c["cohort"], c["protocol"]) for c in found} == {(c, p) for c in (REAL, SYNTHETIC, UNSEEN)
                                                              for p in ("M40", "M80")}
    by = {(c["cohort"], c["protocol"]): c["dice_truth"] for c in found}
    assert by[(REAL, "M40")]["mean"] == pytest.approx(0.10) and by[(REAL, "M40")]["verdict"] == "real anatomy better"
    assert by[(SYNTHETIC, "M40")]["verdict"] == "real anatomy worse"
    assert by[(UNSEEN, "M40")]["verdict"] == "undecided" and by[(UNSEEN, "M40")]["mean"] == pytest.approx(0.0)
    targets = {t.name.removeprefix(PREFIX): t for t in recipe_targets(pooled, found, "M80", REAL, (SYNTHETIC, UNSEEN))}
    assert targets["reference segmenter on original M80, Dice vs truth"].verdict == "met"  # ~0.98
    assert targets["harmonized worst-protocol Dice vs truth"].verdict == "met"  # ~0.93, M40 the only one
    assert targets["GAN not below the best baseline on M40"].verdict == "met"  # +0.12 over linear
    assert targets["harmonized noise SD within 25 % of the reference's"].verdict == "met"  # 10 HU everywhere
    worse = targets["no synthetic / unseen-site figure worse than phantom-only"]
    assert worse.verdict == "not met" and worse.value == pytest.approx(-0.05) and "synthetic M40" in worse.detail
    same = Pooled(recipe_frame(0.0, 0.0), replicates=200)
    assert recipe_targets(same, recipe_comparisons(same), "M80", REAL, (SYNTHETIC, UNSEEN))[-1].verdict == "met"


def test_outcome_carries_both_recipes_and_the_report_their_difference(tmp_path) -> None:
    plan = BenchmarkPlan(seeds=(0, 1), bootstrap_replicates=200, real_training=True, real_cases=CASES,
                         experiment="ctharmony-benchmark-test")
    subsets = [s for s in plan.reported() if s.name in {SYNTHETIC, UNSEEN} or s.name == "real-dcmqi-ct-3slice"]
    frame = recipe_frame(0.10, -0.05)
    outcome = write_outcome(tmp_path, plan, subsets, frame, {0: {"segmenter": "s"}, 1: {"segmenter": "s"}}, {"x": 1.0})
    document = json.loads(outcome.json_path.read_text())
    recipe_real = document["subsets"][recipe_cohort(REAL)]
    assert recipe_real["recipe"] == "real-anatomy training" and "recipe" not in document["subsets"][REAL]
    assert recipe_real["reports"] == ["reports/real-dcmqi-ct-3slice-real-anatomy-training"]
    assert len(document["recipe_comparisons"]) == 6 and document["plan"]["real_training"] is True
    assert sum(t["name"].startswith(PREFIX) for t in document["targets"]) == 5
    report = outcome.report.read_text()
    assert "## Real-anatomy training minus phantom-only training" in report and "--real-training" in report
    assert f"| {recipe_cohort(REAL)}, M40 |" in report  # the headline has both recipes


OLD_STAGES = ["simulate", "catalog", "baselines (fit)",
              *(name for seed in (0, 1) for name in (
                  f"segmenter (seed {seed})", f"harmonizer (seed {seed})", f"convert (harmonized, seed {seed})",
                  f"convert (histogram, seed {seed})", f"convert (linear, seed {seed})")), "evaluate"]


def test_without_real_training_the_plan_and_stages_are_as_before(tmp_path) -> None:
    plan = BenchmarkPlan(seeds=(0, 1), real_cases=CASES)
    assert [s.name for s in benchmark_stages(tmp_path, plan)] == OLD_STAGES
    assert "real_training" not in _plan_json(plan)  # the same fingerprint: old journals still resume
    assert plan.reported() == plan.subsets() and len(plan.trainings()) == 1


def test_real_training_declares_a_pair_per_held_out_case_and_one_on_all(tmp_path) -> None:
    plan = BenchmarkPlan(seeds=(0,), real_cases=CASES, real_training=True)
    names = [s.name for s in benchmark_stages(tmp_path, plan)]
    assert names[:4] == ["simulate", "catalog", "real-anatomy training archive", "baselines (fit)"]
    for label in ("real anatomy, all cases", "real anatomy without dcmqi-ct-3slice",
                  "real anatomy without ts-example-ct"):
        for what in ("segmenter", "harmonizer"):
            assert f"{what} ({label}, seed 0)" in names
        for method in ("harmonized", "histogram", "linear"):
            assert f"convert ({method}, {label}, seed 0)" in names
    assert len(names) == 4 + 5 * 4 + 1  # per seed: (1 + (2 + 1)) x (segmenter, harmonizer, 3 conversions)
    trainings = {t.label: t for t in plan.trainings()}
    assert trainings["real anatomy without ts-example-ct"].cases == ("dcmqi-ct-3slice",)
    assert trainings["real anatomy without ts-example-ct"].archives == ("real-ts-example-ct",)
    assert trainings["real anatomy, all cases"].archives == (SYNTHETIC, UNSEEN)
    assert plan.real_training_seed() not in {s.seed for s in plan.subsets()}


def test_real_training_needs_two_real_cases() -> None:
    with pytest.raises(ValueError, match="at least 2 real cases"):
        BenchmarkPlan(real_cases=CASES[:1], real_training=True).check()
    from typer.testing import CliRunner

    from ctharmony.cli import app

    printed = CliRunner().invoke(app, ["benchmark", "--real-training", "--real-series", str(CASES[0][0]),
                                       "--real-mask", str(CASES[0][1])])
    assert printed.exit_code != 0 and "at least 2 real cases" in printed.output


def test_subset_of_a_recipe_is_reported_apart() -> None:
    s = Subset("real-x", "real", ("s",), 2, 1, "d", cohort=REAL, recipe="real-anatomy training")
    assert s.cohort_name == "real-anatomy · real-anatomy training" and s.report_name == "real-x-real-anatomy-training"
