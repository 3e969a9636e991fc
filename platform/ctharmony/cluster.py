"""The one place that connects to Ray.

``connect()`` joins the cluster named by ``address`` (or ``$RAY_ADDRESS``, which ``ray job submit``
sets for its jobs), else starts an embedded local cluster sized to this machine. It is idempotent and
says which cluster it used.

Example:
    >>> info = connect()  # doctest: +SKIP
    >>> info.describe()  # doctest: +SKIP
    'embedded local Ray cluster: 1 node, 2 CPUs, 0 GPUs'
"""

from __future__ import annotations

import dataclasses
import logging
import os

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ClusterInfo:
    """What ``connect`` joined."""

    address: str | None
    nodes: int
    cpus: float
    gpus: float

    @property
    def embedded(self) -> bool:
        return self.address is None

    def describe(self) -> str:
        where = "embedded local Ray cluster" if self.embedded else f"Ray cluster at {self.address}"
        plural = "s" if self.nodes != 1 else ""
        return f"{where}: {self.nodes} node{plural}, {self.cpus:g} CPUs, {self.gpus:g} GPUs"


def resolve_address(address: str | None = None) -> str | None:
    """The address to join: the argument, else ``$RAY_ADDRESS``, else None (embedded local)."""
    return address or os.environ.get("RAY_ADDRESS") or None


def local_resources() -> tuple[int, int]:
    """CPUs and CUDA GPUs of this machine (what an embedded cluster would get)."""
    gpus = 0
    try:
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return os.cpu_count() or 1, gpus


def connect(address: str | None = None, *, num_cpus: int | None = None, quiet: bool = False) -> ClusterInfo:
    """Connect to Ray (idempotent) and return what was joined.

    Args:
        address: a Ray address (``auto``, ``host:port``, ``ray://host:10001``); default ``$RAY_ADDRESS``.
        num_cpus: CPUs of an embedded cluster (default: all of this machine's).
        quiet: do not log which cluster was used.
    """
    import ray

    target = resolve_address(address)
    if not ray.is_initialized():
        if target:
            ray.init(address=target, log_to_driver=True)
        else:
            cpus, gpus = local_resources()
            ray.init(
                address="local",  # always a new embedded cluster, never a stray `ray start` head
                num_cpus=num_cpus or cpus,
                num_gpus=gpus,
                # The dashboard serves Ray's State API, which Train's placement-group cleaner and
                # `ray list` need; it listens on loopback only.
                include_dashboard=True,
                dashboard_host="127.0.0.1",
                configure_logging=False,
                log_to_driver=True,
            )
    info = current()
    if not quiet:
        log.info("using %s", info.describe())
    return info


def current() -> ClusterInfo:
    """Describe the Ray cluster this process is connected to."""
    import ray

    resources = ray.cluster_resources()
    alive = [n for n in ray.nodes() if n.get("Alive")]
    ctx = ray.get_runtime_context()
    address = resolve_address()
    if address is None and getattr(ctx, "gcs_address", None) and _is_job_or_remote():
        address = ctx.gcs_address
    return ClusterInfo(
        address=address,
        nodes=len(alive),
        cpus=float(resources.get("CPU", 0.0)),
        gpus=float(resources.get("GPU", 0.0)),
    )


def _is_job_or_remote() -> bool:
    return bool(os.environ.get("RAY_JOB_ID") or os.environ.get("RAY_ADDRESS"))


def shutdown() -> None:
    """Disconnect from Ray (stops an embedded cluster)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
