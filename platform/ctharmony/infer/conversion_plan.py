"""The conversion's resource plan: actor pools, GPUs and CPUs per actor, batch size, expected concurrency.

Resources are asked for, not guessed from what happens to be running: the pools use GPUs when the
cluster has them *or can get them* (:func:`ctharmony.resource_plan.decide_gpu`, the rule training and
sweeps follow too; :mod:`ctharmony.gpu_capacity` finds the GPUs), so on a fresh
autoscaling cluster the first GPU actor is a pending request that makes the autoscaler start a GPU
worker, and the pools grow up to what the GPU node types can bring.

- GPU: each actor asks ``gpus_per_actor`` GPUs (0.5: a harmonizer and a segmenter share a GPU) and
  ``actor_cpus`` CPUs (1); each pool grows from 1 to ``max_gpus / (2 * gpus_per_actor)`` actors.
- CPU: one pool of actors runs both networks (``stages_in_one_actor``); each actor asks ``actor_cpus``
  (0.5, headroom for the read/write tasks: a pool holding every CPU deadlocks the job) and runs ``cpus /
  max actors`` torch threads (:func:`cpu_threads`); the pool grows from 1 to ``cpus // 4`` actors.
  Precision and layout are each actor's choice (:mod:`ctharmony.infer.cpu_precision`).

Example:
    >>> from ctharmony.gpu_capacity import GpuCapacity
    >>> from ctharmony.infer.pipeline import ConvertOptions
    >>> plan = plan_conversion(ConvertOptions(), cpus=16, capacity=GpuCapacity(0, 8, "cluster.yaml"))
    >>> plan.use_gpu, plan.harmonizer.num_gpus, plan.harmonizer.max_actors
    (True, 0.5, 8)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from typing import Any

from ctharmony.gpu_capacity import GpuCapacity, discover_gpu_capacity
from ctharmony.resource_plan import decide_gpu

log = logging.getLogger(__name__)
DEFAULT_CPU_BATCH = 8  # slices per forward pass on CPU (GPU: chosen from free memory)
PRECISIONS = ("auto", "bf16", "fp16", "fp32")


@dataclasses.dataclass(frozen=True)
class PoolPlan:
    """One Ray Data actor pool: its size range and what each actor asks for."""

    min_actors: int
    max_actors: int
    num_cpus: float
    num_gpus: float
    actors_now: int  # how many fit on the resources present now

    def remote_args(self) -> dict[str, float]:
        return {"num_cpus": self.num_cpus, **({"num_gpus": self.num_gpus} if self.num_gpus else {})}


@dataclasses.dataclass(frozen=True)
class ConversionPlan:
    """What ``convert`` will ask Ray for; ``to_json()`` is what ``convert --plan`` prints."""

    use_gpu: bool
    device: str | None  # None: CUDA in the actor (its GPU), "cpu" otherwise
    cpus: float
    gpus: GpuCapacity
    harmonizer: PoolPlan
    segmenter: PoolPlan
    batch_slices: int | None  # None: from free GPU memory
    threads: int | None
    precision: str  # "auto" on CPU: each actor decides for its own CPU (ctharmony.infer.cpu_precision)
    channels_last: bool | None  # None: each actor decides (on CUDA; on CPU for ctharmony's networks)
    compile: bool
    stages_in_one_actor: bool  # one pool runs harmonizer and segmenter (its bounds: ``harmonizer``)
    task_cpus: float
    task_concurrency: int
    tasks_in_flight_per_actor: int

    def predictor_kwargs(self) -> dict[str, Any]:
        """The GPU-fill settings the predictors' constructors take."""
        return {"amp": self.precision, "channels_last": self.channels_last, "compile": self.compile}

    def as_dict(self) -> dict[str, Any]:
        pools = {}
        named = ((("harmonize_and_segment", self.harmonizer),) if self.stages_in_one_actor
                 else (("harmonizer", self.harmonizer), ("segmenter", self.segmenter)))
        for name, pool in named:
            pools[name] = {**dataclasses.asdict(pool), "series_in_flight": pool.max_actors
                           * self.tasks_in_flight_per_actor}  # fmt: skip
        per_gpu = round(1 / self.harmonizer.num_gpus, 3) if self.harmonizer.num_gpus else 0
        return {
            "device": "gpu" if self.use_gpu else "cpu",
            "cluster": {"cpus": self.cpus, "gpus_now": self.gpus.now, "gpus_max": self.gpus.max,
                        "gpu_source": self.gpus.source, "autoscaled": self.gpus.autoscaled},
            "pools": pools,
            "actors_per_gpu": per_gpu,
            "batch_slices": self.batch_slices if self.batch_slices is not None else "auto (free GPU memory)",
            "threads_per_actor": self.threads,
            "precision": self.precision,
            "channels_last": "auto" if self.channels_last is None else self.channels_last,
            "compile": self.compile,
            "stages_in_one_actor": self.stages_in_one_actor,
            "read_write_tasks": {"num_cpus": self.task_cpus, "concurrency": self.task_concurrency},
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)


def _pool(bounds: tuple[int, int] | None, default_max: int, cpus: float, gpus: float, fit_now: int) -> PoolPlan:
    low, high = bounds or (1, default_max)
    if not 1 <= low <= high:
        raise ValueError(f"actor pool bounds must satisfy 1 <= min <= max, got ({low}, {high})")
    return PoolPlan(low, high, cpus, gpus, min(high, fit_now))


def cpu_threads(cpus: float, max_actors: int) -> int:
    """Torch threads per CPU actor: the cluster's cores over a pool's largest size (at least 1).

    On CPU one actor runs both networks one after the other on these threads, as the bare forward does
    (docs/performance.md has the measurements).

    Example:
        >>> cpu_threads(2, 1), cpu_threads(16, 4), cpu_threads(1, 1)
        (2, 4, 1)
    """
    return max(1, int(cpus) // max(1, max_actors))


def plan_conversion(options: Any, cpus: float, gpus: float = 0.0, capacity: GpuCapacity | None = None,
                    *, connected: bool = False, joined: bool = False) -> ConversionPlan:
    """The plan for ``options`` (a :class:`~ctharmony.infer.pipeline.ConvertOptions`) on a cluster.

    Args:
        cpus, gpus: the cluster's CPUs and GPUs now.
        capacity: the GPUs it can have (default: discovered, see :mod:`ctharmony.gpu_capacity`).
        connected, joined: passed to the discovery (Ray is connected; Ray was joined, not started here).
    """
    if capacity is None:
        capacity = discover_gpu_capacity(gpus, hint_gpus=options.max_gpus, connected=connected, joined=joined,
                                          autoscaling_config=options.autoscaling_config)  # fmt: skip
    precision = options.precision
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    per_actor = float(options.gpus_per_actor)
    if not 0 < per_actor <= 8:
        raise ValueError(f"gpus_per_actor must be in (0, 8], got {per_actor:g}")
    use_gpu = decide_gpu(capacity, max(per_actor, 1.0), options.use_gpu, "GPU conversion")
    if use_gpu:
        actor_cpus = options.actor_cpus or 1.0
        gpus_max = max(capacity.max, 1.0)
        pool_max = max(1, math.floor(gpus_max / (2 * per_actor) + 1e-9))
        fit_now = min(math.floor(capacity.now / (2 * per_actor) + 1e-9), math.floor(cpus / (2 * actor_cpus)))
    else:
        per_actor, actor_cpus = 0.0, options.actor_cpus or 0.5
        pool_max = max(1, int(cpus // 4))
        fit_now = max(1, math.floor(cpus / (2 * actor_cpus)))
    harmonizer = _pool(options.harmonizer_actors, pool_max, actor_cpus, per_actor, fit_now)
    segmenter = _pool(options.segmenter_actors, pool_max, actor_cpus, per_actor, fit_now)
    threads = options.threads or (None if use_gpu else cpu_threads(cpus, harmonizer.max_actors))
    batch = options.batch_slices if options.batch_slices else (None if use_gpu else DEFAULT_CPU_BATCH)
    channels_last = options.channels_last if options.channels_last is not None else (True if use_gpu else None)
    return ConversionPlan(
        use_gpu=use_gpu, device=None if use_gpu else "cpu", cpus=cpus, gpus=capacity, harmonizer=harmonizer,
        segmenter=segmenter, batch_slices=batch, threads=threads,
        precision=precision, channels_last=channels_last,
        compile=bool(options.compile),
        stages_in_one_actor=not use_gpu if options.stages_in_one_actor is None else options.stages_in_one_actor,
        task_cpus=options.task_cpus, task_concurrency=options.task_concurrency or max(1, int(cpus)),
        tasks_in_flight_per_actor=options.tasks_in_flight_per_actor or 2,
    )  # fmt: skip


def stage_resources(options: Any, cpus: float, gpus: float) -> dict[str, Any]:
    """The plan as the pipeline's ``build_dataset`` uses it (discovers the GPU capacity from Ray)."""
    from ctharmony import cluster

    joined = not cluster.current().embedded
    plan = plan_conversion(options, cpus, gpus, connected=True, joined=joined)
    log.info("resource plan: %s", json.dumps(plan.as_dict(), separators=(",", ":")))
    return {
        "plan": plan,
        "remote": plan.harmonizer.remote_args(),
        "harmonizer": (plan.harmonizer.min_actors, plan.harmonizer.max_actors),
        "segmenter": (plan.segmenter.min_actors, plan.segmenter.max_actors),
        "device": plan.device,
        "predictor": {**plan.predictor_kwargs(), "batch_slices": plan.batch_slices, "threads": plan.threads},
    }


def plan_for_cluster(options: Any, address: str | None = None) -> ConversionPlan:
    """Connect to Ray (``address``, ``$RAY_ADDRESS`` or embedded) and plan ``options`` on what it finds."""
    from ctharmony import cluster

    info = cluster.connect(address, quiet=True)
    return plan_conversion(options, info.cpus, info.gpus, connected=True, joined=not info.embedded)
