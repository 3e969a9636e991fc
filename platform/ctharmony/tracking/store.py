"""Where MLflow runs go (a server named by ``$MLFLOW_TRACKING_URI``, else SQLite under the data home) and how a
run records its resolved config (flattened params and a ``config.yaml`` artifact). Nothing logged here may
carry patient names or IDs.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ctharmony.config import data_home, flatten, to_dict

ENV_URI = "MLFLOW_TRACKING_URI"


def default_store() -> tuple[str, Path]:
    """The embedded default: ``sqlite:///<home>/mlflow.db`` and ``<home>/mlartifacts``."""
    home = data_home()
    return f"sqlite:///{home / 'mlflow.db'}", home / "mlartifacts"


def tracking_uri() -> str:
    """The MLflow tracking URI in force."""
    return os.environ.get(ENV_URI) or default_store()[0]


def artifact_root() -> Path | None:
    """The local artifact folder of the embedded store, or None when a server decides.

    (``mlflow.set_tracking_uri`` exports ``MLFLOW_TRACKING_URI`` itself, so compare URIs, not the env.)
    """
    uri, root = default_store()
    return root if tracking_uri() == uri else None


def configure() -> str:
    """Point MLflow at the tracking URI in force (creating the local store's folder) and return it."""
    import mlflow

    uri = tracking_uri()
    root = artifact_root()
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    return uri


def ensure_experiment(name: str) -> str:
    """Create (if needed) and return the id of experiment ``name``; local artifacts go under the home."""
    import mlflow

    configure()
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    root = artifact_root()
    location = (root / name).as_uri() if root is not None else None
    return mlflow.create_experiment(name, artifact_location=location)


def log_config(config: Any) -> None:
    """Log a config (dataclass or mapping) as flattened params and as ``config.yaml``."""
    import mlflow
    import yaml

    data = config if isinstance(config, Mapping) else to_dict(config)
    params = {k: ("" if v is None else v) for k, v in flatten(data).items()}
    for start in range(0, len(params), 100):  # MLflow caps a batch at 100 params
        mlflow.log_params(dict(list(params.items())[start : start + 100]))
    mlflow.log_text(yaml.safe_dump(dict(data), sort_keys=False), "config.yaml")


@contextlib.contextmanager
def start_run(
    experiment: str,
    run_name: str | None = None,
    config: Any = None,
    tags: Mapping[str, str] | None = None,
    nested: bool = False,
    parent_run_id: str | None = None,
) -> Iterator[Any]:
    """Start an MLflow run in ``experiment`` with the config logged; yields the active run."""
    import mlflow

    experiment_id = ensure_experiment(experiment)
    all_tags = dict(tags or {})
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=run_name, nested=nested, tags=all_tags or None
    ) as run:
        if config is not None:
            log_config(config)
        yield run


def is_loopback(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine (127.0.0.0/8, ::1, ``localhost``)."""
    import ipaddress

    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name or 0.0.0.0-like wildcard: assume reachable from elsewhere


def metric_key(*parts: str) -> str:
    """An MLflow-safe metric name from parts joined by ``/`` (other characters become ``_``).

    Example:
        >>> metric_key("stage_seconds", "convert (harmonized, seed 0)")
        'stage_seconds/convert _harmonized_ seed 0_'
    """
    return "/".join(re.sub(r"[^A-Za-z0-9_.\- :]", "_", str(p)) for p in parts)


def log_stage_seconds(run_id: str, seconds: Mapping[str, float]) -> None:
    """Each stage's seconds (:func:`ctharmony.stages.run_stages`) as ``stage_seconds/<stage>`` metrics of a run."""
    import mlflow

    configure()
    client = mlflow.MlflowClient()
    for name, value in seconds.items():
        client.log_metric(run_id, metric_key("stage_seconds", name), float(value))
