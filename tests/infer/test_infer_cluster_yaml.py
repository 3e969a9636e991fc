"""cluster.yaml validates against the Ray autoscaler's schema (offline, private API guarded)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

CLUSTER_YAML = Path(__file__).resolve().parents[2] / "cluster.yaml"


@pytest.fixture(scope="module")
def autoscaler():
    try:
        from ray.autoscaler._private.util import prepare_config, validate_config
    except ImportError:  # a private API: newer Ray may move it
        pytest.skip("this Ray has no ray.autoscaler._private.util.prepare_config/validate_config")
    return prepare_config, validate_config


def _validate(config, autoscaler):
    prepare_config, validate_config = autoscaler
    validate_config(prepare_config(copy.deepcopy(config)))


def test_cluster_yaml_passes_the_autoscaler_schema(autoscaler):
    config = yaml.safe_load(CLUSTER_YAML.read_text(encoding="utf-8"))
    _validate(config, autoscaler)
    head = config["available_node_types"][config["head_node_type"]]
    workers = {k: v for k, v in config["available_node_types"].items() if k != config["head_node_type"]}
    assert not head["node_config"]["InstanceType"].startswith(("g", "p"))  # a CPU head
    gpu = workers["gpu_worker"]
    assert gpu["node_config"]["InstanceType"].startswith(("g", "p")) and gpu["min_workers"] < gpu["max_workers"]
    assert "gpu" in config["docker"]["image"]
    assert any("pip install" in c and "ctharmony" in c for c in config["setup_commands"])


def test_cluster_yaml_offers_gpu_workers_that_convert_plans_for():
    """GPU worker types start from zero, declare their GPUs, and a fresh cluster plans GPU actor pools."""
    from ctharmony.gpu_capacity import discover_gpu_capacity
    from ctharmony.infer.conversion_plan import plan_conversion
    from ctharmony.infer.pipeline import ConvertOptions
    from ctharmony.train.launch import plan_workers

    config = yaml.safe_load(CLUSTER_YAML.read_text(encoding="utf-8"))
    head = config["head_node_type"]
    gpu_types = {k: v for k, v in config["available_node_types"].items()
                 if k != head and v.get("resources", {}).get("GPU", 0) >= 1}  # fmt: skip
    assert "gpu_worker" in gpu_types and config["available_node_types"][head]["resources"].get("GPU", 0) == 0
    for node_type in gpu_types.values():
        assert node_type["min_workers"] == 0 < node_type["max_workers"] <= config["max_workers"]
        assert node_type["node_config"]["InstanceType"].startswith(("g", "p"))
    assert max(t["resources"]["GPU"] for t in gpu_types.values()) >= 4  # a node for 4-worker NCCL DDP
    capacity = discover_gpu_capacity(0, autoscaling_config=CLUSTER_YAML, connected=False)
    plan = plan_conversion(ConvertOptions(), cpus=config["available_node_types"][head]["resources"]["CPU"],
                           capacity=capacity)  # fmt: skip
    assert plan.use_gpu and plan.harmonizer.remote_args()["num_gpus"] == 0.5 and plan.harmonizer.actors_now == 0
    ddp = plan_workers(4, capacity)
    assert ddp.use_gpu and ddp.backend == "nccl" and ddp.resources_per_worker["GPU"] == 1.0


def test_schema_check_catches_mistakes(autoscaler):
    config = yaml.safe_load(CLUSTER_YAML.read_text(encoding="utf-8"))
    misspelt = copy.deepcopy(config)
    misspelt["max_worker"] = misspelt.pop("max_workers")
    with pytest.raises(Exception, match="max_worker"):
        _validate(misspelt, autoscaler)
    wrong_head = copy.deepcopy(config)
    wrong_head["head_node_type"] = "no_such_type"
    with pytest.raises(Exception):  # noqa: B017 - the schema/validator raises ValueError or jsonschema errors
        _validate(wrong_head, autoscaler)
