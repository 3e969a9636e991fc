"""Pooled figures, paired GAN-vs-baseline comparisons, three-way verdicts, report, MLflow run and CLI output,
on synthetic per-exam tables of several seeds (no training)."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ctharmony import tracking
from ctharmony.benchmark.design import REAL, SYNTHETIC, BenchmarkPlan, Subset
from ctharmony.benchmark.pooled import Pooled
from ctharmony.benchmark.publish import benchmark_metrics
from ctharmony.benchmark.table import check_targets
from ctharmony.benchmark.verdicts import comparisons
from ctharmony.benchmark.workflow import BenchmarkOutcome, write_outcome
from ctharmony.evaluate import bootstrap

SEEDS = (0, 1, 2)


def exam_rows(cohort: str, dice: dict[tuple[str, str], np.ndarray], clusters: list[str] | None = None,
              mae: dict[tuple[str, str], np.ndarray] | None = None) -> pd.DataFrame:
    """Per-exam rows as the benchmark pools them: ``dice[(protocol, method)]`` is exams x seeds (Dice vs truth;
    Dice vs ref the same minus 0.01), volumes from Dice, MAE where given."""
    rows, mae = [], mae or {}
    for (protocol, method), values in dice.items():
        errors = mae.get((protocol, method), np.full_like(values, np.nan))
        for e in range(values.shape[0]):
            for s, seed in enumerate(SEEDS):
                v = float(values[e, s])
                exam = f"{cohort}/exam-{e + 1:03d}"
                rows.append({"seed": seed, "cohort": cohort, "exam": exam,
                             "cluster": clusters[e] if clusters else exam, "patient_key": f"p{e}", "site": "s",
                             "protocol": protocol, "method": method, "volume_ml": 100.0 * v, "dice": v - 0.01,
                             "reference_volume_ml": 100.0, "volume_diff_ml": 100.0 * v - 100.0,
                             "volume_ratio_pct": 100.0 * v - 100.0, "dice_truth": v, "truth_volume_ml": 100.0,
                             "mae_t80_hu": float(errors[e, s]),
                             "noise_sd_hu": 10.0})
    table = pd.DataFrame(rows)
    table["abs_volume_diff_ml"] = table["volume_diff_ml"].abs()
    table["abs_volume_ratio_pct"] = table["volume_ratio_pct"].abs()
    return table


def cohort(name: str, gan_m40: np.ndarray, linear_m40: np.ndarray, clusters: list[str] | None = None,
           mae: dict | None = None) -> pd.DataFrame:
    shape = gan_m40.shape
    return exam_rows(name, {
        ("M40", "original"): np.full(shape, 0.5), ("M40", "harmonized"): gan_m40,
        ("M40", "linear-recalibration"): linear_m40, ("M40", "histogram-matching"): np.full(shape, 0.6),
        ("M80", "original"): np.full(shape, 1.01), ("M80", "harmonized"): np.full(shape, 1.01),
        ("M80", "linear-recalibration"): np.full(shape, 1.01)}, clusters, mae)


def test_paired_differences_and_three_way_verdicts() -> None:
    rng = np.random.default_rng(0)
    patients = rng.uniform(0.6, 0.95, (12, 1))  # exams differ a lot; methods differ little, the same way
    seeds = rng.normal(0.0, 0.002, (1, 3))
    linear = patients + seeds + rng.normal(0.0, 0.003, (12, 3))
    frame = pd.concat([
        cohort("better", linear + 0.2, linear), cohort("close", linear + 0.05 + rng.normal(0, 0.03, (12, 3)), linear),
        cohort("worse", linear - 0.02, linear)])
    pooled = Pooled(frame, replicates=2000)
    rows = {(c["cohort"], c["baseline"]): c["dice_truth"] for c in comparisons(pooled, "M80")}
    assert {c["protocol"] for c in comparisons(pooled, "M80")} == {"M40"}  # the reference is not compared
    better = rows[("better", "linear-recalibration")]
    assert better["verdict"] == "GAN better" and better["mean"] == pytest.approx(0.2, abs=1e-4)
    assert better["ci_high"] - better["ci_low"] < 0.01  # paired: the exams' spread cancels
    unpaired = bootstrap.interval(pooled.values("better", "M40", "harmonized", "dice_truth"),
                                  bootstrap.draw([str(i) for i in range(12)], 3, 2000, 0))
    assert unpaired.ci_high - unpaired.ci_low > 10 * (better["ci_high"] - better["ci_low"])
    assert rows[("worse", "linear-recalibration")]["verdict"] == "GAN worse"
    targets = {t.subset: t for t in check_targets(pooled, "M80", real=REAL, unseen="x", synthetic="y")
               if t.name.startswith("GAN vs best baseline")}
    assert targets["better"].verdict == "met" and "best baseline linear-recalibration" in targets["better"].detail
    assert targets["close"].verdict == "undecided" and targets["close"].ci_low < 0.05 < targets["close"].ci_high
    assert targets["worse"].verdict == "not met" and targets["worse"].met is False


def test_mae_branch_and_reference_pass_through() -> None:
    values = np.full((6, 3), 0.9) + np.random.default_rng(1).normal(0, 0.002, (6, 3))
    mae = {("M40", "harmonized"): np.full((6, 3), 30.0), ("M40", "linear-recalibration"): np.full((6, 3), 50.0),
           ("M40", "histogram-matching"): np.full((6, 3), 60.0)}
    pooled = Pooled(cohort(SYNTHETIC, values, values, mae=mae), replicates=500)
    by = {t.name: t for t in check_targets(pooled, "M80", real=REAL, unseen="x", synthetic=SYNTHETIC)}
    assert by["GAN vs best baseline on M40"].verdict == "met"  # no Dice gain, but MAE 30 / 50 = 0.6 <= 0.70
    assert "MAE ratio 0.6 [0.6, 0.6]" in by["GAN vs best baseline on M40"].detail
    assert by["reference passes unchanged: harmonized Dice"].verdict == "met"  # Dice vs ref 1.0 exactly
    assert by["reference passes unchanged: |volume difference| %"].verdict == "not met"  # 1 % off
    noise = by["harmonized noise SD within 15 % of the reference's"]
    assert noise.verdict == "met" and noise.value == pytest.approx(1.0)  # 10 HU everywhere
    assert by["harmonized NPS peak within 15 % of the reference's"].verdict == "not measured"


def test_real_cases_are_resampled_as_patients() -> None:
    rng = np.random.default_rng(2)
    case = np.repeat(rng.uniform(0.6, 0.9, 2), 3)[:, None] + rng.normal(0, 0.005, (6, 3))
    grouped = Pooled(cohort(REAL, case, case - 0.05, clusters=["a"] * 3 + ["b"] * 3), replicates=2000)
    exams = Pooled(cohort(REAL, case, case - 0.05), replicates=2000)
    ci_grouped = grouped.interval(REAL, "M40", "harmonized", "dice_truth")
    ci_exams = exams.interval(REAL, "M40", "harmonized", "dice_truth")
    assert ci_grouped.n_exams == ci_exams.n_exams == 6
    assert (ci_grouped.ci_high - ci_grouped.ci_low) > 1.2 * (ci_exams.ci_high - ci_exams.ci_low)


def test_outcome_report_mlflow_and_cli(tmp_path, monkeypatch) -> None:
    rng = np.random.default_rng(3)
    base = rng.uniform(0.7, 0.9, (6, 1)) + rng.normal(0, 0.005, (6, 3))
    frame = pd.concat([cohort(SYNTHETIC, base + 0.1, base), cohort(REAL, base, base + 0.01, ["a"] * 3 + ["b"] * 3)])
    plan = BenchmarkPlan(seeds=SEEDS, bootstrap_replicates=500)
    subsets = [Subset(SYNTHETIC, "phantom", ("s",), 6, 1, "synthetic"),
               Subset("real-a", "real", ("s",), 3, 2, "real", cohort=REAL, real_case=(tmp_path, tmp_path)),
               Subset("real-b", "real", ("s",), 3, 3, "real", cohort=REAL, real_case=(tmp_path, tmp_path))]
    models = {s: {"segmenter": f"runs:/seg{s}/model", "harmonized": f"runs:/gan{s}/model"} for s in SEEDS}
    outcome = write_outcome(tmp_path, plan, subsets, frame, models, {"simulate": 10.0, "convert": 5.0})
    document = json.loads(outcome.json_path.read_text())
    assert document["subsets"][REAL]["exams"] == 6 and document["subsets"][REAL]["patients"] == 2
    assert document["subsets"][REAL]["archives"] == ["real-a", "real-b"]
    figure = document["subsets"][SYNTHETIC]["table"]["M40"]["harmonized"]["dice_truth"]
    assert figure["mean"] == pytest.approx(float((base + 0.1).mean()), abs=1e-4) and figure["n_seeds"] == 3
    assert figure["ci_low"] < figure["mean"] < figure["ci_high"]
    assert set(document["per_seed"]) == {"0", "1", "2"} and document["plan"]["seeds"] == [0, 1, 2]
    report = outcome.report.read_text()
    assert "| M40 | harmonized |" in report and "GAN better" in report and "total: 15 s" in report
    assert "| GAN vs best baseline on M40 | synthetic |" in report
    tracking.configure()
    run = mlflow.get_run(outcome.run_id)
    assert set(benchmark_metrics(document)) <= set(run.data.metrics)
    assert run.data.metrics["synthetic/dice_truth/M40/harmonized"] == pytest.approx(figure["mean"])
    assert run.data.metrics["stage_seconds/simulate"] == 10.0 and run.data.metrics["seconds/total"] == 15.0

    import ctharmony.benchmark
    from ctharmony.cli import app

    monkeypatch.setattr(ctharmony.benchmark, "run_benchmark", lambda out, plan, resume: BenchmarkOutcome(
        outcome.out, outcome.json_path, outcome.report, outcome.run_id, document))
    printed = CliRunner().invoke(app, ["benchmark", "--out", str(tmp_path), "--seeds", "1"])
    assert printed.exit_code == 0, printed.output
    assert "GAN better" in printed.output and "met  synthetic     GAN vs best baseline on M40" in printed.output
