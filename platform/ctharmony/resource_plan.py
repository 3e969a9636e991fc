"""One resource planner for training, sweeps and conversion: GPUs or CPUs per worker, NCCL's rule, trials
at a time, with one set of messages.

The GPU decision is the same everywhere: GPUs are used when the cluster has *or can get*
(:mod:`ctharmony.gpu_capacity`) what one unit of work needs — the DDP workers of one training run or
trial, or one conversion actor — unless the user says otherwise. An explicit ``use_gpu=True`` is honoured
(the request waits for the autoscaler), except when the cluster is known to offer fewer GPUs than that
unit needs. DDP over NCCL needs a whole GPU per rank, so a fraction of a GPU is for one worker only.
The conversion's own plan (actor pools, batch, threads, precision) is
:func:`ctharmony.infer.conversion_plan.plan_conversion`, built on :func:`decide_gpu`.

Example:
    >>> from ctharmony.gpu_capacity import GpuCapacity
    >>> plan_workers(2, GpuCapacity(0, 8, "cluster.yaml")).describe()
    '2 worker(s) x (1 CPU, 1 GPU), nccl'
    >>> plan_trials(2, GpuCapacity(0, 0, "none"), 2).describe()
    '1 trial(s) at a time, each 2 worker(s) x (0.95 CPU)'
"""

from __future__ import annotations

import dataclasses
import logging
import math

from ctharmony.config import ConfigError
from ctharmony.gpu_capacity import GpuCapacity

log = logging.getLogger(__name__)
DRIVER_CPUS = 0.1  # a sweep trial's own function only waits for its Train run
_EPS = 1e-9


def check_positive(value: float, what: str) -> float:
    """``value`` as a float, or a :class:`ConfigError` naming ``what``."""
    if value <= 0:
        raise ConfigError(f"{what} must be > 0, got {value:g}")
    return float(value)


def gpus_for_each_worker(value: float | None, workers: int) -> float:
    """GPUs each DDP worker asks for (default 1): a fraction only for a single worker (NCCL's rule)."""
    per_gpu = check_positive(1.0 if value is None else float(value), "GPUs per worker")
    if per_gpu < 1 and workers > 1:
        raise ConfigError(f"{workers} DDP workers need a whole GPU each (NCCL refuses two ranks on one GPU): "
                          "use 1 GPU per worker, or 1 worker")
    return per_gpu


def decide_gpu(capacity: GpuCapacity, need: float, use_gpu: bool | None, what: str) -> bool:
    """Whether ``what`` (needing ``need`` GPUs at once) runs on GPUs.

    ``use_gpu`` None: when the cluster has or can get ``need`` GPUs (a warning when it has some, but too
    few). ``True``: yes, unless the cluster is known to offer fewer than ``need`` (:class:`ConfigError`).
    """
    enough = capacity.max >= need - _EPS
    if use_gpu is None:
        if not enough and capacity.available:
            log.warning("%s needs %g GPUs, the cluster has %s: running on CPUs", what, need, capacity.describe())
        return enough
    if use_gpu and not enough and capacity.source != "none":
        raise ConfigError(f"{what} needs {need:g} GPUs; the cluster has {capacity.describe()}")
    return bool(use_gpu)


@dataclasses.dataclass(frozen=True)
class WorkerPlan:
    """What each Ray Train worker asks for, and the DDP backend."""

    workers: int
    use_gpu: bool
    resources_per_worker: dict[str, float]
    backend: str  # "nccl" on GPUs, "gloo" on CPUs

    def describe(self) -> str:
        per = ", ".join(f"{v:g} {k}" for k, v in self.resources_per_worker.items())
        return f"{self.workers} worker(s) x ({per}), {self.backend}"


def plan_workers(workers: int, capacity: GpuCapacity, *, use_gpu: bool | None = None,
                 gpus_per_worker: float | None = None, cpus_per_worker: float | None = None) -> WorkerPlan:
    """Resources of one training run's DDP workers (``cpus_per_worker`` default 1).

    Example:
        >>> plan_workers(2, GpuCapacity(0, 0, "none")).resources_per_worker
        {'CPU': 1.0}
    """
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    per_gpu = gpus_for_each_worker(gpus_per_worker, workers)
    gpu = decide_gpu(capacity, workers * per_gpu, use_gpu, f"{workers} GPU worker(s)")
    cpus = check_positive(1.0 if cpus_per_worker is None else float(cpus_per_worker), "CPUs per worker")
    return WorkerPlan(workers, gpu, {"CPU": cpus, **({"GPU": per_gpu} if gpu else {})}, "nccl" if gpu else "gloo")


@dataclasses.dataclass(frozen=True)
class TrialPlan:
    """How sweep trials use the cluster: their workers, the trial driver's share, trials at a time."""

    trial: WorkerPlan  # each trial's Train workers
    driver: dict[str, float]
    max_concurrent: int

    @property
    def workers(self) -> int:
        return self.trial.workers

    @property
    def use_gpu(self) -> bool:
        return self.trial.use_gpu

    @property
    def resources_per_worker(self) -> dict[str, float]:
        return self.trial.resources_per_worker

    def describe(self) -> str:
        per = ", ".join(f"{v:g} {k}" for k, v in self.resources_per_worker.items())
        return f"{self.max_concurrent} trial(s) at a time, each {self.workers} worker(s) x ({per})"


def plan_trials(cpus: float, capacity: GpuCapacity, workers: int, *, use_gpu: bool | None = None,
                cpus_per_worker: float | None = None, trials: int | None = None,
                gpus_per_worker: float | None = None) -> TrialPlan:
    """Size sweep trials (``workers`` DDP workers each) so they never oversubscribe the cluster, and pack them
    onto the GPUs it can have.

    GPU: each worker asks ``gpus_per_worker`` (1; a fraction packs one-worker trials onto a GPU) and trials
    run ``capacity.max // (workers * gpus_per_worker)`` at a time. CPU: one CPU per worker when a trial fits,
    else the CPUs shared out (a 2-core laptop with 2 workers per trial runs one trial at a time, each worker
    0.95 CPU). GPU nodes still to come bring their own CPUs.

    Example:
        >>> plan_trials(32, GpuCapacity(8, 8, "present"), 2).max_concurrent
        4
        >>> plan_trials(16, GpuCapacity(0, 2, "cluster.yaml"), 1, gpus_per_worker=0.5).max_concurrent
        4
    """
    if workers < 1:
        raise ConfigError(f"workers per trial must be >= 1, got {workers}")
    per_gpu = gpus_for_each_worker(gpus_per_worker, workers)
    need = workers * per_gpu
    gpu = decide_gpu(capacity, need, use_gpu, f"a trial of {workers} GPU worker(s)")
    autoscaled = gpu and capacity.max > capacity.now
    if cpus_per_worker is None:
        fits = cpus >= workers + DRIVER_CPUS or autoscaled
        cpus_per_worker = 1.0 if fits else math.floor((cpus - DRIVER_CPUS) / workers * 20) / 20
    if cpus_per_worker <= 0 or (not autoscaled and workers * cpus_per_worker + DRIVER_CPUS > cpus + _EPS):
        raise ConfigError(f"{workers} workers per trial do not fit in {cpus:g} CPUs")
    concurrent = math.floor((cpus + _EPS) / (workers * cpus_per_worker + DRIVER_CPUS))
    if gpu:
        by_gpu = math.floor(max(capacity.max, need) / need + _EPS)
        concurrent = by_gpu if autoscaled else min(concurrent, by_gpu)
    concurrent = max(1, min(concurrent, trials or concurrent))
    plan = WorkerPlan(workers, gpu, {"CPU": float(cpus_per_worker), **({"GPU": per_gpu} if gpu else {})},
                      "nccl" if gpu else "gloo")
    return TrialPlan(plan, {"CPU": DRIVER_CPUS}, concurrent)
