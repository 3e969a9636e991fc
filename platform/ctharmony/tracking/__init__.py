"""MLflow tracking: where runs go, and how a run records its resolved config.

The tracking URI is ``$MLFLOW_TRACKING_URI`` when set (a server, a database), else a SQLite store with
an artifact folder under :func:`ctharmony.config.data_home`. Runs carry the resolved config both as
flattened params and as a ``config.yaml`` artifact, so every figure in the UI can be traced back to
the exact settings that produced it. Nothing logged here may carry patient names or IDs.

Example::

    with start_run("ctharmony-demo", run_name="smoke", config={"lr": 1e-4}) as run:
        mlflow.log_metric("loss", 0.1)
"""

from __future__ import annotations

from ctharmony.tracking.store import (
    ENV_URI,
    artifact_root,
    configure,
    default_store,
    ensure_experiment,
    is_loopback,
    log_config,
    log_stage_seconds,
    metric_key,
    start_run,
    tracking_uri,
)

__all__ = [
    "ENV_URI",
    "artifact_root",
    "configure",
    "default_store",
    "ensure_experiment",
    "is_loopback",
    "log_config",
    "log_stage_seconds",
    "metric_key",
    "start_run",
    "tracking_uri",
]
