"""The conversion's resource plan: GPU pools when the cluster has or can get GPUs, CPU pools otherwise.

Pure planning first (no Ray), then a real local Ray cluster: a CPU-only head, to which a node
advertising 4 fake GPUs is added. On it, ``convert --plan`` is read back as JSON, and the pipeline's
own dataset runs fake predictors that record the GPUs Ray gave their actors.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctharmony.gpu_capacity import (
    GpuCapacity,
    discover_gpu_capacity,
    gpu_capacity_from_node_types,
    read_autoscaling_config,
)
from ctharmony.infer.conversion_plan import plan_conversion
from ctharmony.infer.pipeline import ConvertOptions

CLUSTER_YAML = Path(__file__).resolve().parents[2] / "cluster.yaml"


# --- planning, no Ray -------------------------------------------------------------------------------


def test_gpus_present_give_gpu_pools_sharing_each_gpu():
    plan = plan_conversion(ConvertOptions(), cpus=16, capacity=GpuCapacity(4, 4, "present"))
    assert plan.use_gpu and plan.device is None and not plan.stages_in_one_actor  # a pool per network
    for pool in (plan.harmonizer, plan.segmenter):
        assert pool.num_gpus == 0.5 and pool.num_cpus == 1.0
        assert (pool.min_actors, pool.max_actors, pool.actors_now) == (1, 4, 4)  # a pair per GPU
    assert plan.batch_slices is None and plan.precision == "auto" and plan.channels_last
    quarter = plan_conversion(ConvertOptions(gpus_per_actor=0.25), cpus=16, capacity=GpuCapacity(4, 4, "present"))
    assert quarter.harmonizer.max_actors == 8 and quarter.as_dict()["actors_per_gpu"] == 4


def test_cpu_only_cluster_falls_back_to_cpu_pools():
    plan = plan_conversion(ConvertOptions(), cpus=16, capacity=GpuCapacity(0, 0, "none"))
    assert not plan.use_gpu and plan.device == "cpu" and plan.precision == "auto"  # each actor's CPU decides
    assert plan.harmonizer.remote_args() == {"num_cpus": 0.5}  # headroom for read/write tasks
    assert plan.harmonizer.max_actors == 4 and plan.batch_slices == 8 and plan.channels_last is None
    assert plan.threads == 4 and plan.as_dict()["channels_last"] == "auto"  # 16 cores over 4 actors
    assert plan.stages_in_one_actor and not plan_conversion(ConvertOptions(stages_in_one_actor=False), cpus=16,
                                                            capacity=GpuCapacity(0, 0, "none")).stages_in_one_actor
    small = plan_conversion(ConvertOptions(), cpus=2, capacity=GpuCapacity(0, 0, "none"))
    assert small.harmonizer.max_actors == 1 and small.threads == 2  # both cores for each actor
    assert plan_conversion(ConvertOptions(threads=1), cpus=2, capacity=GpuCapacity(0, 0, "none")).threads == 1


def test_autoscalable_gpus_are_planned_before_they_exist():
    capacity = discover_gpu_capacity(0, autoscaling_config=CLUSTER_YAML, connected=False)
    assert capacity.now == 0 and capacity.max >= 1 and capacity.autoscaled and "cluster.yaml" in capacity.source
    plan = plan_conversion(ConvertOptions(), cpus=16, capacity=capacity)
    assert plan.use_gpu and plan.harmonizer.num_gpus == 0.5
    assert plan.harmonizer.actors_now == 0 and plan.harmonizer.max_actors == int(capacity.max)


def test_explicit_choices_win_over_the_cluster():
    cpu = plan_conversion(ConvertOptions(use_gpu=False), cpus=8, capacity=GpuCapacity(4, 4, "present"))
    assert not cpu.use_gpu and cpu.harmonizer.num_gpus == 0
    forced = plan_conversion(ConvertOptions(use_gpu=True), cpus=8, capacity=GpuCapacity(0, 0, "none"))
    assert forced.use_gpu and forced.harmonizer.max_actors == 1  # asks for a GPU: the autoscaler may bring one
    hinted = discover_gpu_capacity(0, hint_gpus=3, connected=False)
    assert (hinted.max, hinted.source) == (3, "--gpus hint")
    assert plan_conversion(ConvertOptions(batch_slices=16, precision="bf16"), 8, capacity=hinted).batch_slices == 16
    with pytest.raises(ValueError, match="precision"):
        plan_conversion(ConvertOptions(precision="fp8"), 8, capacity=hinted)
    with pytest.raises(ValueError, match="min <= max"):
        plan_conversion(ConvertOptions(harmonizer_actors=(3, 2)), 8, capacity=hinted)


def test_node_types_fill_largest_gpu_nodes_first_within_the_cluster_cap():
    types = {"one": {"resources": {"GPU": 1}, "max_workers": 8}, "four": {"resources": {"GPU": 4}, "max_workers": 2},
             "cpu": {"resources": {"CPU": 8}, "max_workers": 8}}  # fmt: skip
    assert gpu_capacity_from_node_types(types) == 16
    assert gpu_capacity_from_node_types(types, max_workers=3) == 9  # 2 x 4 + 1 x 1


def test_unreadable_autoscaling_config_names_the_file(tmp_path):
    bad = tmp_path / "cluster.yaml"
    bad.write_text("just: a mapping\n", encoding="utf-8")
    with pytest.raises(ValueError, match="cluster.yaml.*available_node_types"):
        read_autoscaling_config(bad)
    with pytest.raises(ValueError, match="missing.yaml"):
        read_autoscaling_config(tmp_path / "missing.yaml")


# --- a real local Ray cluster -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cpu_cluster():
    """A one-node CPU-only Ray cluster (the head has no GPU), joined by address like a real cluster."""
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 4, "num_gpus": 0})
    try:
        ray.init(address=cluster.address)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture
def fake_gpu_node(cpu_cluster):
    """A second node advertising 4 GPUs (fake: no CUDA behind them), removed after the test."""
    node = cpu_cluster.add_node(num_cpus=2, num_gpus=4)
    cpu_cluster.wait_for_nodes()
    try:
        yield node
    finally:
        cpu_cluster.remove_node(node)


class _Recorder:
    """Stands in for a predictor: records the GPUs Ray gave this actor and its settings; passes rows through."""

    kind = "recorder"

    def __init__(self, model, **kwargs):
        import os

        import ray

        self.folder = Path(model)
        self.info = {"kind": self.kind, "gpu_ids": [str(g) for g in ray.get_gpu_ids()], "pid": os.getpid(),
                     "device": kwargs.get("device"), "batch_slices": kwargs.get("batch_slices"),
                     "amp": kwargs.get("amp")}  # fmt: skip
        with open(self.folder / f"{self.kind}-{self.info['pid']}.json", "w", encoding="utf-8") as handle:
            json.dump(self.info, handle)  # one file per actor, written when Ray starts it

    def __call__(self, batch):
        return batch


class _HarmonizerRecorder(_Recorder):
    kind = "harmonizer"


class _SegmenterRecorder(_Recorder):
    kind = "segmenter"


def _run_pipeline(tmp_path: Path, options: ConvertOptions, series: int = 4) -> list[dict]:
    """Build the pipeline's dataset (real read and write tasks) around the recorders and run it."""
    import ray

    from ctharmony import cluster
    from ctharmony.infer.pipeline import build_dataset

    record = tmp_path / "actors"
    record.mkdir()
    items = [{"series_key": f"s{i}", "series_uid": f"1.2.{i}", "study_uid": "1.2", "patient_key": "p",
              "site": "a", "protocol": "M40", "files": [str(tmp_path / f"missing-{i}.dcm")]}
             for i in range(series)]  # fmt: skip
    info = cluster.current()
    ds = build_dataset(items, str(record), str(record), tmp_path / "out", options, info.cpus, info.gpus,
                       _HarmonizerRecorder, _SegmenterRecorder)  # fmt: skip
    rows = list(ds.iter_rows())
    assert sorted(r["series_key"] for r in rows) == [f"s{i}" for i in range(series)]
    assert all(r["status"] == "failed" and "read" in r["reason"] for r in rows)  # the files don't exist
    assert ray.is_initialized()
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(record.glob("*.json"))]


@pytest.mark.slow
def test_cpu_only_cluster_plans_and_runs_cpu_actors(cpu_cluster, tmp_path):
    result = CliRunner().invoke(_app(), ["convert", "--plan", "--address", cpu_cluster.address])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["device"] == "cpu" and plan["cluster"]["gpus_max"] == 0
    assert plan["stages_in_one_actor"] and list(plan["pools"]) == ["harmonize_and_segment"]
    assert plan["pools"]["harmonize_and_segment"]["num_gpus"] == 0
    assert plan["pools"]["harmonize_and_segment"]["num_cpus"] == 0.5
    actors = _run_pipeline(tmp_path, ConvertOptions())
    assert {a["kind"] for a in actors} == {"harmonizer", "segmenter"}
    assert len({a["pid"] for a in actors}) == 1  # both models in one actor
    assert all(a["gpu_ids"] == [] and a["device"] == "cpu" and a["batch_slices"] == 8 for a in actors)


@pytest.mark.slow
def test_fake_gpu_node_gets_gpu_actor_pools(fake_gpu_node, cpu_cluster, tmp_path):
    result = CliRunner().invoke(_app(), ["convert", "--plan", "--address", cpu_cluster.address])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["device"] == "gpu" and plan["cluster"]["gpus_now"] == 4 and plan["cluster"]["gpu_source"] == "present"
    for name in ("harmonizer", "segmenter"):
        pool = plan["pools"][name]
        assert pool["num_gpus"] == 0.5 and (pool["min_actors"], pool["max_actors"]) == (1, 4)
    assert plan["batch_slices"].startswith("auto")
    actors = _run_pipeline(tmp_path, ConvertOptions(harmonizer_actors=(2, 2), segmenter_actors=(2, 2)))
    assert {a["kind"] for a in actors} == {"harmonizer", "segmenter"}
    for actor in actors:  # every actor holds one of the node's GPUs, and would pick CUDA and bf16/fp16
        assert len(actor["gpu_ids"]) == 1 and actor["gpu_ids"][0] in {"0", "1", "2", "3"}
        assert actor["device"] is None and actor["batch_slices"] is None and actor["amp"] == "auto"
    assert sum(a["kind"] == "harmonizer" for a in actors) == 2  # the pool size asked for, one model load each


@pytest.mark.slow
def test_autoscaler_sees_gpu_demand_from_a_cpu_only_cluster(cpu_cluster):
    """No GPU yet, but the autoscaler's node types offer some: the pool's first actor is GPU demand."""
    import ray
    import ray._private.state as state
    from ray._raylet import GCS_AUTOSCALER_CLUSTER_CONFIG_KEY, GCS_AUTOSCALER_STATE_NAMESPACE
    from ray.autoscaler.v2.sdk import get_cluster_resource_state
    from ray.core.generated import autoscaler_pb2
    from ray.experimental.internal_kv import _internal_kv_del, _internal_kv_put

    from ctharmony.infer.conversion_plan import plan_for_cluster

    assert not plan_for_cluster(ConvertOptions()).use_gpu
    published = autoscaler_pb2.ClusterConfig()  # what an autoscaler publishes in the GCS (Ray Data reads it)
    group = published.node_group_configs.add(name="gpu_worker", min_count=0, max_count=3)
    group.resources.update({"CPU": 8, "GPU": 1})
    _internal_kv_put(GCS_AUTOSCALER_CLUSTER_CONFIG_KEY, published.SerializeToString(), overwrite=True,
                     namespace=GCS_AUTOSCALER_STATE_NAMESPACE)  # fmt: skip
    try:
        assert state.state.get_cluster_config() is not None
        plan = plan_for_cluster(ConvertOptions())
    finally:
        _internal_kv_del(GCS_AUTOSCALER_CLUSTER_CONFIG_KEY, namespace=GCS_AUTOSCALER_STATE_NAMESPACE)
    assert plan.use_gpu and plan.gpus.source == "gcs cluster config" and plan.harmonizer.max_actors == 3

    @ray.remote
    class Actor:
        def ready(self):
            return True

    actor = Actor.options(**plan.harmonizer.remote_args()).remote()
    try:
        demand = []
        for _ in range(100):  # the raylets report pending work to the GCS about once a second
            resource_state = get_cluster_resource_state(ray._private.worker.global_worker.gcs_client)
            demand = [dict(r.request.resources_bundle) for r in resource_state.pending_resource_requests]
            if any(d.get("GPU") == 0.5 for d in demand):
                break
            import time

            time.sleep(0.2)
        assert any(d.get("GPU") == 0.5 and d.get("CPU") == 1.0 for d in demand), demand
        ready, _ = ray.wait([actor.ready.remote()], timeout=0.5)
        assert not ready  # nothing can place it until a GPU worker joins
    finally:
        ray.kill(actor)


def _app():
    from ctharmony.cli import app

    return app
