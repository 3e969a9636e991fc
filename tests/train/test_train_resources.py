"""Resources of training and sweeps: GPUs asked for when the cluster has or can get them, NCCL, packing."""

from __future__ import annotations

import pytest

from ctharmony.config import ConfigError
from ctharmony.gpu_capacity import GpuCapacity
from ctharmony.train.launch import plan_workers
from ctharmony.train.sweep.resources import plan_resources

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
    present = plan_resources(32, 8, 2)  # one trial per GPU pair
    assert present.use_gpu and present.max_concurrent == 4
    packed = plan_resources(32, 4, 1, gpus_per_worker=0.5)  # two one-worker trials per GPU
    assert packed.resources_per_worker == {"CPU": 1.0, "GPU": 0.5} and packed.max_concurrent == 8
    autoscaled = plan_resources(4, 0, 2, gpu_capacity=8)  # a small CPU head, GPU workers to come
    assert autoscaled.use_gpu and autoscaled.max_concurrent == 4
    assert not plan_resources(4, 0, 2).use_gpu  # nothing says GPUs can come: CPU trials
    with pytest.raises(ConfigError, match="NCCL"):
        plan_resources(32, 4, 2, gpus_per_worker=0.5)
