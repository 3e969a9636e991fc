"""Sizing sweep trials to the cluster, and releasing the workers of trials Tune has stopped.

Each trial is a small Tune driver (a fraction of a CPU) that starts a Ray Train run whose workers
reserve their own placement group. :func:`plan_resources` sizes workers and the number of trials at a
time so the cluster is never oversubscribed. :class:`ReleaseStoppedTrialWorkers` fixes a leak: when
Tune stops a trial (ASHA, or the last epoch), it kills the trial's actor and with it the Train
controller, but the controller's placement group lives as long as the job; Train's own cleaner needs
the Ray dashboard (absent on an embedded cluster), so without this callback the next trials wait
forever for CPUs that nobody uses.

Example:
    >>> plan_resources(2, 0, 2).describe()
    '1 trial(s) at a time, each 2 worker(s) x (0.95 CPU)'
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Any

from ray.tune import Callback

from ctharmony.config import ConfigError

log = logging.getLogger(__name__)
DRIVER_CPUS = 0.1  # a trial's own function only waits for its Train run


@dataclasses.dataclass(frozen=True)
class ResourcePlan:
    """How trials use the cluster: per-worker resources, the trial driver's share, trials at a time."""

    workers: int
    use_gpu: bool
    resources_per_worker: dict[str, float]
    driver: dict[str, float]
    max_concurrent: int

    def describe(self) -> str:
        per = ", ".join(f"{v:g} {k}" for k, v in self.resources_per_worker.items())
        return f"{self.max_concurrent} trial(s) at a time, each {self.workers} worker(s) x ({per})"


def plan_resources(
    cpus: float,
    gpus: float,
    workers: int,
    *,
    use_gpu: bool | None = None,
    cpus_per_worker: float | None = None,
    trials: int | None = None,
    gpus_per_worker: float | None = None,
    gpu_capacity: float | None = None,
) -> ResourcePlan:
    """Size trials so they never oversubscribe the cluster, and pack them onto its GPUs.

    GPU (the default when the cluster has or can get ``workers * gpus_per_worker`` GPUs): each worker
    asks ``gpus_per_worker`` (1; a fraction packs several one-worker trials onto a GPU) and trials run
    ``gpu_capacity // (workers * gpus_per_worker)`` at a time, ``gpu_capacity`` being the GPUs the cluster
    can have (default: ``gpus``, those present). CPU: one CPU per worker when a trial fits, else the CPUs
    shared out (a 2-core laptop with 2 workers per trial runs one trial at a time, each worker 0.95 CPU).

    Example:
        >>> plan_resources(32, 8, 2).max_concurrent
        4
        >>> plan_resources(16, 0, 1, gpus_per_worker=0.5, gpu_capacity=2).max_concurrent  # autoscaled GPUs
        4
    """
    if workers < 1:
        raise ConfigError(f"workers per trial must be >= 1, got {workers}")
    capacity = max(gpus, gpu_capacity or 0.0)
    per_gpu = 1.0 if gpus_per_worker is None else float(gpus_per_worker)
    if per_gpu <= 0:
        raise ConfigError(f"gpus per worker must be > 0, got {per_gpu:g}")
    if per_gpu < 1 and workers > 1:
        raise ConfigError(f"{workers} DDP workers need a whole GPU each (NCCL refuses two ranks on one GPU); "
                          "use gpus_per_worker >= 1, or 1 worker per trial to pack trials onto GPUs")
    need = workers * per_gpu
    use_gpu = capacity >= need - 1e-9 if use_gpu is None else use_gpu
    if use_gpu and capacity < need - 1e-9:
        raise ConfigError(f"a trial of {workers} GPU workers needs {need:g} GPUs; the cluster has {capacity:g}")
    autoscaled = use_gpu and capacity > gpus  # GPU nodes still to come bring their own CPUs
    if cpus_per_worker is None:
        fits = cpus >= workers + DRIVER_CPUS or autoscaled
        cpus_per_worker = 1.0 if fits else math.floor((cpus - DRIVER_CPUS) / workers * 20) / 20
    if cpus_per_worker <= 0 or (not autoscaled and workers * cpus_per_worker + DRIVER_CPUS > cpus + 1e-9):
        raise ConfigError(f"{workers} workers per trial do not fit in {cpus:g} CPUs")
    concurrent = math.floor((cpus + 1e-9) / (workers * cpus_per_worker + DRIVER_CPUS))
    if use_gpu:
        by_gpu = math.floor(capacity / need + 1e-9)
        concurrent = by_gpu if autoscaled else min(concurrent, by_gpu)
    concurrent = max(1, min(concurrent, trials or concurrent))
    per_worker = {"CPU": cpus_per_worker, **({"GPU": per_gpu} if use_gpu else {})}
    return ResourcePlan(workers, use_gpu, per_worker, {"CPU": DRIVER_CPUS}, concurrent)


def release_orphaned_placement_groups() -> int:
    """Remove this job's placement groups whose creating actor is dead (nobody can remove them now).

    Only groups created by an actor of the current job, not detached, and whose creator died are
    touched; returns how many were removed.
    """
    import ray
    from ray._private.state import state as global_state  # no public API exposes the creator's fate
    from ray._raylet import ActorID, PlacementGroupID
    from ray.core.generated import gcs_pb2
    from ray.util.placement_group import PlacementGroup, remove_placement_group

    job_id = ray.get_runtime_context().get_job_id()
    no_actor = ActorID.nil().binary()  # groups created by a driver (e.g. Tune's trial groups) carry this
    removed = 0
    for raw in global_state._connect_and_get_accessor().get_placement_group_table():
        pg = gcs_pb2.PlacementGroupTableData.FromString(raw)
        if (
            pg.creator_job_id.hex() == job_id
            and pg.creator_actor_id not in (b"", no_actor)
            and pg.creator_actor_dead
            and not pg.is_detached
            and pg.state != gcs_pb2.PlacementGroupTableData.REMOVED
        ):
            remove_placement_group(PlacementGroup(PlacementGroupID(pg.placement_group_id)))
            removed += 1
    if removed:
        log.info("released %d placement group(s) of stopped trials' Train workers", removed)
    return removed


class ReleaseStoppedTrialWorkers(Callback):
    """Tune callback: every ``interval_s`` (between Tune steps), release stopped trials' worker groups."""

    def __init__(self, interval_s: float = 2.0) -> None:
        self.interval_s = interval_s
        self._last = 0.0

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        now = time.monotonic()
        if abs(now - self._last) >= self.interval_s:  # abs: a restored sweep runs in a new process
            self._last = now
            try:
                release_orphaned_placement_groups()
            except Exception as err:  # never let housekeeping break a sweep
                log.warning("could not check for orphaned placement groups: %s", err)
