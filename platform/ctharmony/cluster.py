"""The one place that connects to Ray.

``connect()`` joins the cluster named by ``address`` (or ``$RAY_ADDRESS``, which ``ray job submit``
sets for its jobs), else starts an embedded local cluster sized to this machine. It is idempotent and
says which cluster it used.

Isolation defaults (the embedded cluster is one user's, on one machine):

* every port binds loopback: Ray resolves ``--node-ip-address 127.0.0.1`` to the machine's outward IP
  and binds GCS, raylet, object manager, workers and agents there, unless its local-only mode
  (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, what Ray uses on macOS and Windows) is on while it starts;
* Ray's processes never import from the driver's current folder, where a folder named like a module
  (``dl/``, ``yaml/``) would shadow the real one: Ray ships that folder to the workers' ``sys.path``
  (``JobConfig._py_driver_sys_path``; :func:`code_only_job_config` drops it) and its dashboard
  modules start with ``python -c`` (``PYTHONSAFEPATH=1`` keeps the folder off their path);
* the pseudonym salt is resolved (made once) on the driver before any worker needs it.

Example::

    info = connect()
    info.describe()
    # -> 'embedded local Ray cluster: 1 node, 2 CPUs, 0 GPUs'
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Iterator

log = logging.getLogger(__name__)

# Environment of the processes a local Ray starts: Ray's local-only mode (node IP = loopback, so every
# server binds 127.0.0.1), and Python's safe path (no current folder on sys.path: Ray's dashboard
# modules start with `python -c`, which would import a `yaml/` of the folder the driver ran in).
START_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONSAFEPATH": "1"}


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

    from ctharmony.salt import pseudonym_salt

    target = resolve_address(address)
    if not ray.is_initialized():
        pseudonym_salt()  # made here, on the driver, before any worker reads it
        if target:
            ray.init(address=target, log_to_driver=True, job_config=code_only_job_config())
        else:
            cpus, gpus = local_resources()
            with isolated_start():
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
                    job_config=code_only_job_config(),
                )
    info = current()
    if not quiet:
        log.info("using %s", info.describe())
    return info


@contextlib.contextmanager
def isolated_start() -> Iterator[None]:
    """While a local Ray starts: loopback-only node, no current folder on its processes' ``sys.path``.

    The variables of :data:`START_ENV` reach every process Ray spawns (restored here afterwards); Ray
    reads its local-only flag at import, hence the patch of its constant for this driver.
    """
    from ray._private import ray_constants

    before_env = {key: os.environ.get(key) for key in START_ENV}
    before_flag = ray_constants.ENABLE_RAY_CLUSTER
    os.environ.update(START_ENV)
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before_flag
        for key, value in before_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def code_only_job_config():
    """A Ray ``JobConfig`` that does not put the driver's current folder on the workers' ``sys.path``."""
    from ray.job_config import JobConfig

    class CodeOnlyJobConfig(JobConfig):
        def _get_proto_job_config(self):  # noqa: ANN202 - Ray's private hook, called once at connect
            here = os.path.realpath(os.curdir)
            self._py_driver_sys_path = [p for p in self._py_driver_sys_path if os.path.realpath(p) != here]
            return super()._get_proto_job_config()

    return CodeOnlyJobConfig()


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
