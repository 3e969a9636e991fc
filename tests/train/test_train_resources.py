"""Resources of training and sweeps: GPUs asked for when the cluster has or can get them, NCCL, packing."""

from __future__ import annotations

import pytest

from ctharmony.config import ConfigError
from ctharmony.gpu_capacity import GpuCapacity
from ctharmony.resource_plan import plan_trials, plan_workers

NONE = GpuCapacity(0, 0, "none")
AUTOSCALED = GpuCapacity(0, 8, "autoscaling config cluster.yaml")


def test_ddp_workers_take_one_gpu_each_over_nccl_when_gpus_can_come():
    gpu = plan_workers(4, AUTOSCALED)
    assert gpu.use_gpu and gpu.backend == "nccl" and gpu.resources_per_worker == {"CPU": 1.0, "GPU": 1.0}
    cpu = plan_workers(2, NONE)
    assert not cpu.use_gpu and cpu.backend == "gloo" and cpu.resources_per_worker == {"CPU": 1.0}
    too_few = plan_workers(4, GpuCapacity(2, 2, "present"))  # 4 ranks need 4 GPUs: CPU, with a warning
    assert not too_few.use_gpu
    assert not plan_workers(2, AUTOSCALED, use_gpu=False).use_gpu
    assert plan_workers(2, NONE, use_gpu=True, cpus_per_worker=4).resources_per_worker == {"CPU": 4.0, "GPU": 1.0}


def test_fractional_gpus_only_for_a_single_worker():
    assert plan_workers(1, AUTOSCALED, gpus_per_worker=0.5).resources_per_worker["GPU"] == 0.5
    with pytest.raises(ConfigError, match="NCCL"):
        plan_workers(2, AUTOSCALED, gpus_per_worker=0.5)
    with pytest.raises(ConfigError, match="> 0"):
        plan_workers(1, AUTOSCALED, cpus_per_worker=0)


def test_sweep_packs_trials_onto_the_gpus_the_cluster_can_have():
    present = plan_trials(32, GpuCapacity(8, 8, "present"), 2)  # one trial per GPU pair
    assert present.use_gpu and present.max_concurrent == 4
    packed = plan_trials(32, GpuCapacity(4, 4, "present"), 1, gpus_per_worker=0.5)  # two 1-worker trials per GPU
    assert packed.resources_per_worker == {"CPU": 1.0, "GPU": 0.5} and packed.max_concurrent == 8
    autoscaled = plan_trials(4, AUTOSCALED, 2)  # a small CPU head, GPU workers to come
    assert autoscaled.use_gpu and autoscaled.max_concurrent == 4
    assert not plan_trials(4, NONE, 2).use_gpu  # nothing says GPUs can come: CPU trials
    with pytest.raises(ConfigError, match="NCCL"):
        plan_trials(32, GpuCapacity(4, 4, "present"), 2, gpus_per_worker=0.5)


def test_training_sweeps_and_conversion_decide_gpus_by_one_rule(caplog):
    from ctharmony.infer.conversion_plan import plan_conversion
    from ctharmony.infer.pipeline import ConvertOptions
    from ctharmony.resource_plan import decide_gpu

    two = GpuCapacity(2, 2, "present")
    for capacity in (NONE, AUTOSCALED, two):
        train = plan_workers(2, capacity).use_gpu
        assert plan_trials(16, capacity, 2).use_gpu == train == decide_gpu(capacity, 2, None, "x")
        assert plan_conversion(ConvertOptions(), cpus=16, capacity=capacity).use_gpu == capacity.available
    with caplog.at_level("WARNING"):
        assert not plan_workers(4, two).use_gpu and not plan_trials(16, two, 4).use_gpu
    assert [r.getMessage() for r in caplog.records] == [
        "4 GPU worker(s) needs 4 GPUs, the cluster has 2 GPUs now, up to 2: running on CPUs",
        "a trial of 4 GPU worker(s) needs 4 GPUs, the cluster has 2 GPUs now, up to 2: running on CPUs"]
    for forced in (lambda: plan_workers(4, two, use_gpu=True), lambda: plan_trials(16, two, 4, use_gpu=True),
                   lambda: plan_conversion(ConvertOptions(use_gpu=True, gpus_per_actor=4), 16, capacity=two)):
        with pytest.raises(ConfigError, match="needs 4 GPUs; the cluster has 2 GPUs now"):
            forced()
