"""How many GPUs a Ray cluster has now and can have: present, or offered by its autoscaler's node types.

The rule (first that answers wins):

1. GPUs present now (``ray.cluster_resources()["GPU"]``).
2. The autoscaler's node types that Ray keeps in the GCS (``ray._private.state.state.get_cluster_config()``,
   the same source Ray Data's autoscaler reads), where the autoscaler publishes them.
3. The cluster launcher's config: ``autoscaling_config`` (a ``cluster.yaml``), else
   ``~/ray_bootstrap_config.yaml`` that ``ray up`` writes on the head (where a submitted job's driver
   runs) when Ray was joined rather than started here.
4. A hint: ``hint_gpus`` (``--gpus N``) says how many GPUs the cluster can have.

When none answers the cluster is taken as CPU-only; an explicit ``--gpu`` overrides the decision.

Example:
    >>> gpu_capacity_from_node_types({"gpu": {"resources": {"GPU": 1}, "max_workers": 4}}, max_workers=8)
    4.0
    >>> discover_gpu_capacity(0.0, hint_gpus=2, connected=False).describe()
    '0 GPUs now, up to 2 (from --gpus hint)'
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

BOOTSTRAP_CONFIG = Path("~/ray_bootstrap_config.yaml")


@dataclasses.dataclass(frozen=True)
class GpuCapacity:
    """GPUs a cluster has now (``now``) and can have (``max``), and which source said so."""

    now: float
    max: float
    source: str  # "present", "gcs cluster config", "autoscaling config <path>", "--gpus hint", "none"

    @property
    def available(self) -> bool:
        """The cluster has or can get at least one GPU."""
        return self.max >= 1

    @property
    def autoscaled(self) -> bool:
        """More GPUs can come than are present now."""
        return self.max > self.now

    def describe(self) -> str:
        where = f" (from {self.source})" if self.source not in ("present", "none") else ""
        return f"{self.now:g} GPUs now, up to {self.max:g}{where}"


def gpu_capacity_from_node_types(node_types: dict[str, dict[str, Any]], max_workers: int | None = None) -> float:
    """The most GPUs the worker node types of a cluster-launcher config can bring up together.

    Node types are filled largest GPU count first, each up to its own ``max_workers`` and all together
    up to the cluster's ``max_workers``.
    """
    offers = []
    for name, node_type in node_types.items():
        gpus = float((node_type.get("resources") or {}).get("GPU", 0) or 0)
        count = int(node_type.get("max_workers", 0) or 0)
        if gpus > 0 and count > 0:
            offers.append((gpus, count, name))
    budget = max_workers if max_workers is not None else sum(count for _, count, _ in offers)
    total = 0.0
    for gpus, count, _ in sorted(offers, reverse=True):
        take = min(count, budget)
        total += take * gpus
        budget -= take
    return total


def read_autoscaling_config(path: str | Path) -> float:
    """GPUs the node types of a cluster-launcher YAML (``cluster.yaml`` or the head's bootstrap copy) offer."""
    import yaml

    path = Path(path).expanduser()
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"autoscaling config {path}: cannot read it: {err}") from err
    if not isinstance(config, dict) or not isinstance(config.get("available_node_types"), dict):
        raise ValueError(f"autoscaling config {path}: no available_node_types mapping (is it a cluster.yaml?)")
    head = config.get("head_node_type")
    workers = {k: v for k, v in config["available_node_types"].items() if k != head and isinstance(v, dict)}
    return gpu_capacity_from_node_types(workers, config.get("max_workers"))


def gcs_cluster_config_gpus() -> float | None:
    """GPUs the autoscaler's node groups published in the GCS can bring (None: nothing published)."""
    try:
        import ray._private.state as state  # private: Ray Data reads the same record

        config = state.state.get_cluster_config()
    except Exception as err:  # noqa: BLE001 - an optional source; absent on older Ray or without a GCS
        log.debug("no GCS cluster config: %s", err)
        return None
    if config is None or not config.node_group_configs:
        return None
    total = 0.0
    for group in config.node_group_configs:
        gpus = float(group.resources.get("GPU", 0))
        if gpus > 0 and group.max_count != 0:
            total += gpus * (group.max_count if group.max_count > 0 else 1024)  # -1: unbounded
    cap = config.max_resources.get("GPU", 0)
    return min(total, float(cap)) if cap else total


def discover_gpu_capacity(
    gpus_now: float,
    *,
    hint_gpus: int | None = None,
    autoscaling_config: str | Path | None = None,
    connected: bool = True,
    joined: bool = False,
) -> GpuCapacity:
    """Apply the module's rule.

    Args:
        gpus_now: GPUs the cluster has now.
        hint_gpus: the ``--gpus`` hint (used only when no other source answers).
        autoscaling_config: a cluster-launcher YAML to read the node types from.
        connected: Ray is connected (the GCS can be asked).
        joined: Ray was joined (an address or a job), not started here: look for the head's bootstrap config.
    """
    offers: list[tuple[float, str]] = []
    if connected:
        offers.append((gcs_cluster_config_gpus() or 0.0, "gcs cluster config"))
    path = Path(autoscaling_config).expanduser() if autoscaling_config else None
    if path is None and joined and BOOTSTRAP_CONFIG.expanduser().is_file():
        path = BOOTSTRAP_CONFIG.expanduser()
    if path is not None:
        offers.append((read_autoscaling_config(path), f"autoscaling config {path}"))
    offered, source = max(offers, default=(0.0, "none"), key=lambda o: o[0])
    if offered > gpus_now:
        return GpuCapacity(gpus_now, offered, source)
    if gpus_now >= 1:
        return GpuCapacity(gpus_now, gpus_now, "present")
    if hint_gpus:
        return GpuCapacity(gpus_now, float(hint_gpus), "--gpus hint")
    return GpuCapacity(gpus_now, gpus_now, "none")
