"""MLflow for sweeps: one parent run per sweep, one child run per Tune trial.

:class:`MLflowTrialRuns` is a Ray Tune callback (it runs in the sweep's driver): when a trial starts
it opens a child run tagged ``mlflow.parentRunId`` with the trial's swept values as params, logs every
reported epoch's metrics with the epoch as step, and closes the run with the trial's final status. Its
trial -> run map is part of Tune's experiment state, so a resumed sweep keeps writing into the same
child runs instead of opening duplicates.

Example::

    callback = MLflowTrialRuns(parent_run_id=run.info.run_id, param_keys=["loss.l1"])
    tune.RunConfig(callbacks=[callback])
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from ray.tune import Callback

TAG_SWEEP = "ctharmony.sweep"
TAG_TRIAL = "ctharmony.trial_id"
# Tune's own bookkeeping in every result; not training metrics.
_SKIP = {
    "time_this_iter_s", "time_total_s", "timestamp", "pid", "time_since_restore",
    "iterations_since_restore", "timesteps_since_restore", "timesteps_total", "episodes_total",
    "done", "should_checkpoint", "checkpoint_dir_name",
}  # fmt: skip


class MLflowTrialRuns(Callback):
    """Tune callback: a child MLflow run per trial under ``parent_run_id``.

    Args:
        parent_run_id: the sweep's parent run (its experiment hosts the children).
        param_keys: the swept config keys to log as the child's params.
        tracking_uri: MLflow tracking URI (default: the one in force when the callback is built).
        sweep_name: tagged on every child, to find a sweep's runs.
    """

    def __init__(
        self,
        parent_run_id: str,
        param_keys: Sequence[str],
        tracking_uri: str | None = None,
        sweep_name: str = "",
    ) -> None:
        import mlflow

        self.tracking_uri = tracking_uri or mlflow.get_tracking_uri()
        self.parent_run_id = parent_run_id
        self.param_keys = list(param_keys)
        self.sweep_name = sweep_name
        self.trial_runs: dict[str, str] = {}
        self._client: Any = None
        self._experiment_id: str | None = None

    def __getstate__(self) -> dict[str, Any]:  # the client is rebuilt after unpickling
        state = dict(self.__dict__)
        state["_client"] = None
        return state

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(self.tracking_uri)
            self._experiment_id = self._client.get_run(self.parent_run_id).info.experiment_id
        return self._client

    def run_id(self, trial: Any) -> str:
        """The child run of ``trial`` (opened on first use)."""
        run_id = self.trial_runs.get(trial.trial_id)
        if run_id is not None:
            return run_id
        client = self.client
        tags = {"mlflow.parentRunId": self.parent_run_id, TAG_TRIAL: trial.trial_id, TAG_SWEEP: self.sweep_name}
        run = client.create_run(self._experiment_id, run_name=f"trial-{trial.trial_id}", tags=tags)
        run_id = run.info.run_id
        self.trial_runs[trial.trial_id] = run_id
        config = trial.config or {}
        params = {k: _param(config[k]) for k in self.param_keys if k in config}
        for key, value in params.items():
            client.log_param(run_id, key, value)
        return run_id

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run_id = self.run_id(trial)
        self.client.update_run(run_id, status="RUNNING")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: Mapping, **info: Any) -> None:
        from mlflow.entities import Metric

        step = int(result.get("training_iteration", 0) or 0)
        stamp = int(float(result.get("timestamp", 0) or 0) * 1000)
        metrics = [Metric(k, float(v), stamp, step) for k, v in _numeric(result).items()]
        if metrics:
            self.client.log_batch(self.run_id(trial), metrics=metrics)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.client.set_terminated(self.run_id(trial), status="FINISHED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.client.set_terminated(self.run_id(trial), status="FAILED")

    def get_state(self) -> dict[str, Any] | None:
        return {"trial_runs": dict(self.trial_runs)} if self.trial_runs else None

    def set_state(self, state: dict[str, Any]) -> None:
        self.trial_runs.update(state.get("trial_runs", {}))


def _numeric(result: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in result.items():
        if key in _SKIP or key.startswith("config/") or isinstance(value, bool):
            continue
        if isinstance(value, numbers.Real) and math.isfinite(float(value)):
            out[key] = float(value)
    return out


def _param(value: Any) -> str:
    if hasattr(value, "item"):
        value = value.item()
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def child_runs(parent_run_id: str, tracking_uri: str | None = None) -> list[Any]:
    """The child runs of a parent run (e.g. to check a sweep's trials in the store)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    parent = client.get_run(parent_run_id)
    return client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'"
    )
