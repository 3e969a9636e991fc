"""The real λ sweep: resource sizing, worker release after Tune stops a trial, and 4 trials x 2 workers."""

from __future__ import annotations

import time

import mlflow
import numpy as np
import pytest
import torch

from ctharmony.config import ConfigError
from ctharmony.gpu_capacity import GpuCapacity
from ctharmony.resource_plan import plan_trials
from ctharmony.train.sweep.placement import release_orphaned_placement_groups

CPUS_ONLY = GpuCapacity(0, 0, "none")
FAST = ["train.epochs_stage1=1", "train.epochs_stage2=1", "train.patches_per_epoch=8", "train.patch_size=32",
        "train.batch_size=4", "train.val_slices=2"]  # fmt: skip


def test_plan_fits_laptop_and_gpu_cluster():
    laptop = plan_trials(2, CPUS_ONLY, 2)  # 2 cores, 2 workers per trial: one trial at a time
    assert laptop.max_concurrent == 1 and laptop.resources_per_worker == {"CPU": 0.95} and not laptop.use_gpu
    assert 2 * 0.95 + laptop.driver["CPU"] <= 2
    assert plan_trials(2, CPUS_ONLY, 1).max_concurrent == 1
    assert plan_trials(16, CPUS_ONLY, 2).max_concurrent == 7  # 7 x (2 + 0.1) <= 16
    assert plan_trials(16, CPUS_ONLY, 2, trials=3).max_concurrent == 3
    gpu = plan_trials(32, GpuCapacity(8, 8, "present"), 2)  # one trial per GPU group
    assert gpu.use_gpu and gpu.max_concurrent == 4 and gpu.resources_per_worker == {"CPU": 1.0, "GPU": 1.0}
    assert plan_trials(2, CPUS_ONLY, 4).resources_per_worker == {"CPU": 0.45}  # shared out, one trial
    with pytest.raises(ConfigError, match="do not fit"):
        plan_trials(2, CPUS_ONLY, 2, cpus_per_worker=1.0)
    with pytest.raises(ConfigError, match="needs 4 GPUs"):
        plan_trials(16, GpuCapacity(2, 2, "present"), 4, use_gpu=True)


def test_placement_group_of_a_dead_actor_is_released_and_others_are_kept(ray_local):
    ray = ray_local
    from ray.util.placement_group import placement_group, placement_group_table, remove_placement_group

    @ray.remote(num_cpus=0)
    class Owner:  # stands in for a Train controller that Tune killed with its trial
        def make(self):
            pg = placement_group([{"CPU": 0.25}])
            ray.get(pg.ready())
            return pg.id.hex()

    owner = Owner.remote()
    orphan = ray.get(owner.make.remote())
    mine = placement_group([{"CPU": 0.25}])  # the driver's own group (like Tune's trial groups): untouched
    ray.get(mine.ready())
    ray.kill(owner)
    deadline = time.monotonic() + 30
    while placement_group_table().get(orphan, {}).get("state") != "REMOVED" and time.monotonic() < deadline:
        release_orphaned_placement_groups()
        time.sleep(0.2)
    assert placement_group_table()[orphan]["state"] == "REMOVED"
    assert placement_group_table()[mine.id.hex()]["state"] == "CREATED"
    remove_placement_group(mine)


@pytest.mark.slow
def test_sweep_of_four_trials_with_two_workers_on_phantom_archive(ray_local, tmp_path):
    from ctharmony.archive import build_catalog
    from ctharmony.loaders import load_model
    from ctharmony.models.io import save_model
    from ctharmony.models.registry import build, load_spec
    from ctharmony.phantom import generate_archive
    from ctharmony.train.sweep.space import SweepSpace
    from ctharmony.train.sweep.tracking import child_runs
    from ctharmony.train.sweep.training import score_on_validation, sweep_lambdas, validation_records

    generate_archive(tmp_path / "archive", patients=4, slices=4, size=64, sites=1, seed=0)
    catalog = tmp_path / "catalog.parquet"
    build_catalog(tmp_path / "archive", catalog)
    segmenter = save_model(build("liver-unet"), tmp_path / "segmenter")  # untrained: a real network, no fit
    space = SweepSpace.from_dict({
        "params": {"loss.l1": {"loguniform": [3.0, 30.0]}, "loss.gan": {"choice": [0.1, 1.0]}},
        "points_to_evaluate": [{"loss.l1": 10.0, "loss.gan": 1.0}],
    })  # fmt: skip
    report = sweep_lambdas("cpu-small", catalog, trials=4, workers_per_trial=2, space=space,
                           segmenter=str(segmenter), overrides=FAST, cpus_per_worker=0.5, max_concurrent=2,
                           storage_path=tmp_path / "sweeps", name="phantom-sweep")  # fmt: skip

    assert report.complete and len(report.outcomes) == 4
    assert all(o.status == "TERMINATED" and o.score is not None for o in report.outcomes)
    assert {o.params["loss.l1"] for o in report.outcomes} >= {10.0}  # the paper's point was tried
    assert set(report.outcomes[0].mae_per_protocol()) == {"FBP", "IR", "M40", "M60", "M80", "OPT"}
    assert list(report.table["trial"])[0] == report.best.trial_id
    # MLflow: the parent run holds one child per trial, each with its λ and per-epoch metrics.
    children = child_runs(report.parent_run_id)
    assert len(children) == 4
    assert {r.data.tags["ctharmony.trial_id"] for r in children} == {o.trial_id for o in report.outcomes}
    client = mlflow.MlflowClient()
    for run in children:
        assert {"loss.l1", "loss.gan"} <= set(run.data.params)
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val/dice_worst")] == [1, 2]
        assert "val/mae_hu/M40" in run.data.metrics
    text = mlflow.artifacts.load_text(f"runs:/{report.parent_run_id}/sweep_results.txt")
    assert "val/mae_hu/M40" in text and report.best.trial_id in text
    # The best trial's model is registered; the alias moves only past a champion on the same validation set.
    decision = report.decision
    version = client.get_model_version("ctharmony-harmonizer", decision.version)
    assert version.tags["ctharmony.validation_fingerprint"]
    if decision.previous_version is None:
        assert decision.promoted
    champion = client.get_model_version_by_alias("ctharmony-harmonizer", "champion")
    assert (str(champion.version) == decision.version) == decision.promoted
    model = load_model(f"models:/ctharmony-harmonizer/{decision.version}")
    out = model(torch.full((1, 1, 40, 36), 80.0))
    assert out.shape == (1, 1, 40, 36) and np.isfinite(out.detach().numpy()).all()
    # Re-scoring the registered model on the validation set (what happens to a champion scored on another
    # set) reproduces the best trial's in-loop figures: every rank validates the same EMA weights.
    spec = load_spec("cpu-small", [*FAST, f"train.segmenter={segmenter}"])
    rescored = score_on_validation(spec, validation_records(spec, catalog))(
        f"models:/ctharmony-harmonizer/{decision.version}")  # fmt: skip
    assert 0.0 <= rescored.dice_worst <= 1.0
    assert rescored.dice_worst == pytest.approx(report.best.score.dice_worst, abs=0.01)
    assert rescored.mae_hu == pytest.approx(report.best.score.mae_hu, rel=0.02)
