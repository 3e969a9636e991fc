"""The main job end to end at the smallest size: every stage runs for real and lands in MLflow."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest

from ctharmony import cluster
from ctharmony.demo import DemoPlan, run_demo

TINY = DemoPlan(
    train_patients=3, test_patients=2, slices=6, size=64, sites=2, seed=11,
    harmonizer_overrides=("train.epochs_stage1=1", "train.epochs_stage2=1", "train.patches_per_epoch=64"),
    segmenter_overrides=("train.epochs_stage1=2", "train.patches_per_epoch=64"),
)


@pytest.mark.slow
def test_demo_runs_every_stage_and_mlflow_holds_its_runs(tmp_path, isolated_home):
    cluster.shutdown()  # the demo manages its own Ray (embedded, then a local head for `ray job submit`)
    try:
        outcome = run_demo(tmp_path / "demo", TINY)
    finally:
        cluster.shutdown()
    results = pd.read_parquet(outcome.results)
    assert len(results) == 2 * 6 and set(results["status"]) == {"done"}
    assert outcome.report.exists() and "Table 2" in outcome.report.read_text(encoding="utf-8")
    for name in ("histogram", "linear"):
        assert (tmp_path / "demo" / f"converted-{name}" / "results.parquet").exists()

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
    artifacts = [a.path for a in client.list_artifacts(evaluation.info.run_id, "report")]
    assert any(path.endswith("report.html") for path in artifacts)
    for name in ("ctharmony-harmonizer", "ctharmony-liver-unet"):
        assert client.search_model_versions(f"name='{name}'")
