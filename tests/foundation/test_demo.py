"""The main job end to end at the smallest size: every stage runs for real and lands in MLflow.

It runs twice: on a simulated archive (scanner physics, the texture-loss harmonizer) with the data home
outside the checkout (the test session's), and on the phantom inside a folder laid out like a fresh
clone (``.ctharmony/`` and ``demo-out/`` beside ``platform/`` and ``jobs/``), where a job that uploaded
its working folder would carry the MLflow store, checkpoints and DICOM with it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from ctharmony import cluster
from ctharmony.demo import DemoPlan, run_demo
from ctharmony.infer import job_code

REPO = Path(__file__).resolve().parents[2]

TINY = DemoPlan(
    train_patients=3, test_patients=2, slices=6, size=64, sites=2, seed=11,
    harmonizer_overrides=("train.epochs_stage1=1", "train.epochs_stage2=1", "train.patches_per_epoch=64"),
    segmenter_overrides=("train.epochs_stage1=2", "train.patches_per_epoch=64"),
)


def _checkout_with_home_inside(root: Path, monkeypatch) -> Path:
    """A folder laid out like a fresh clone, the data home and demo output inside it, as the cwd."""
    for name in ("platform", "jobs", "models"):
        (root / name).symlink_to(REPO / name, target_is_directory=True)
    monkeypatch.setenv("CTHARMONY_HOME", str(root / ".ctharmony"))
    monkeypatch.setattr(job_code, "JOBS_DIR", root / "jobs")  # the job script comes from this checkout
    monkeypatch.chdir(root)
    return root / "demo-out"


@pytest.mark.slow
@pytest.mark.parametrize(("home", "archive"), [("outside", "simulated"), ("inside-checkout", "phantom")])
def test_demo_runs_every_stage_and_mlflow_holds_its_runs(tmp_path, isolated_home, monkeypatch, home, archive):
    out = tmp_path / "demo"
    if home == "inside-checkout":
        (tmp_path / "checkout").mkdir()
        out = _checkout_with_home_inside(tmp_path / "checkout", monkeypatch)
    plan = dataclasses.replace(TINY, archive=archive,
                               harmonizer_spec="cpu-texture" if archive == "simulated" else TINY.harmonizer_spec)
    cluster.shutdown()  # the demo manages its own Ray (embedded, then a local head for `ray job submit`)
    try:
        outcome = run_demo(out, plan)
    finally:
        cluster.shutdown()
    results = pd.read_parquet(outcome.results)
    assert len(results) == 2 * 6 and set(results["status"]) == {"done"}
    report = outcome.report.read_text(encoding="utf-8")
    assert "Table 2" in report
    if archive == "simulated":  # scanner physics: true masks and the noise-free T80 give the image quality
        assert (out / "archive-test" / "truth").is_dir() and "MAE to T80" in report
    for name in ("histogram", "linear"):
        assert (out / f"converted-{name}" / "results.parquet").exists()

    from ctharmony import tracking

    tracking.configure()
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    by_experiment = {mlflow.get_experiment(r.info.experiment_id).name: r for r in runs}
    assert {"ctharmony-segmenter", "ctharmony-train", "ctharmony-evaluate"} <= set(by_experiment)
    client = mlflow.MlflowClient()
    train_run = by_experiment["ctharmony-train"]
    assert len(client.get_metric_history(train_run.info.run_id, "val/mae_hu/M40")) == 2  # one per epoch
    evaluation = by_experiment["ctharmony-evaluate"]
    assert {"dice/M40/original", "dice/M40/harmonized", "ccc/M40/harmonized"} <= set(evaluation.data.metrics)
    evaluations = [r for r in runs if mlflow.get_experiment(r.info.experiment_id).name == "ctharmony-evaluate"]
    assert any(abs(r.data.metrics.get("stage_seconds/harmonizer", -1) - outcome.seconds["harmonizer"]) < 1e-6
               for r in evaluations)  # this demo's stage seconds on its evaluation run
    artifacts = [a.path for a in client.list_artifacts(evaluation.info.run_id, "report")]
    assert any(path.endswith("report.html") for path in artifacts)
    for name in ("ctharmony-harmonizer", "ctharmony-liver-unet"):
        assert client.search_model_versions(f"name='{name}'")


@pytest.mark.slow
def test_demo_command_keeps_the_terminal_to_stage_lines_and_the_table(tmp_path, isolated_home):
    """`ctharmony demo` as a user runs it: at most 60 lines on the terminal, Ray's and MLflow's detail in the log."""
    import os
    import subprocess
    import sys

    out = tmp_path / "demo-out"
    overrides = [arg for value in TINY.harmonizer_overrides for arg in ("--harmonizer-set", value)]
    overrides += [arg for value in TINY.segmenter_overrides for arg in ("--segmenter-set", value)]
    command = [sys.executable, "-m", "ctharmony.cli", "demo", "--out", str(out), "--train-patients", "3",
               "--test-patients", "2", "--slices", "6", "--size", "64", "--seed", "11", *overrides]
    cluster.shutdown()
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    terminal = done.stdout + done.stderr
    assert done.returncode == 0, terminal[-3000:]
    lines = terminal.splitlines()
    assert len(lines) <= 60, terminal
    assert sum(line.startswith("[") and "/8] " in line for line in lines) == 8, terminal  # one line per stage
    assert "| M40 |" in terminal  # the paper's Table 2 row, printed by the console
    assert "Reporting training result" not in terminal and "Warning" not in terminal
    log = (out / "ctharmony.log").read_text(encoding="utf-8")
    assert "Reporting training result" in log and "ray job submit" in log and "== evaluate done in" in log

    again = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=600, check=False,
                           cwd=tmp_path, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    resumed = again.stdout + again.stderr
    assert again.returncode == 0, resumed[-3000:]
    assert sum("done earlier (resumed)" in line for line in resumed.splitlines()) == 7, resumed  # all but evaluate
    table = [line for line in lines if line.startswith("| ")]
    assert table and table == [line for line in resumed.splitlines() if line.startswith("| ")]
