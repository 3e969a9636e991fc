"""The sweep harness: Ray Tune over a :class:`SweepSpace`, MLflow parent/child runs, champion selection.

:func:`run_sweep` runs any Tune function trainable that reports the validation metrics of the training
contract (``val/dice_worst``, ``val/mae_hu``, ``val/mae_hu/<P>``) once per epoch; the real trainable
(one Ray Train DDP run per trial) lives in :mod:`ctharmony.train.sweep.training`. ASHA stops weak trials
early on the per-epoch objective. A sweep is resumable: its Tune experiment lives under
``storage_path/name`` and ``resume=True`` restores it, keeping finished trials. When every trial has
ended, the results table is printed and logged on the parent run, and ``register`` (if given) logs the
best trial's model, which :func:`~ctharmony.train.sweep.select.promote_if_better` then judges.

Example::

    report = run_sweep(trainable, SweepSpace.load(), name="demo", trials=4)
    report.best.params
    # -> {'loss.l1': 10.0, 'loss.perceptual': 1.0, 'loss.gan': 1.0}
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ctharmony.config import data_home
from ctharmony.train.sweep.select import (
    OBJECTIVE,
    ChampionDecision,
    Score,
    TrialOutcome,
    best_epoch,
    promote_if_better,
    results_table,
    select_best,
)
from ctharmony.train.sweep.space import SweepSpace

log = logging.getLogger(__name__)

EXPERIMENT = "ctharmony-sweep"
STATE_FILE = "ctharmony-sweep.json"
MODEL_NAME = "ctharmony-harmonizer"
CHECKPOINT_KEY = "checkpoint_path"  # added by Tune's TuneReportCallback to reports with a checkpoint

#: ``register(best, parent_run_id) -> (model_name, version)``: log and register the best trial's model.
Register = Callable[[TrialOutcome, str], tuple[str, str]]


class SweepError(RuntimeError):
    """A sweep cannot start or resume; the message says why and what to do."""


@dataclasses.dataclass
class SweepReport:
    """The outcome of :func:`run_sweep`."""

    name: str
    path: Path
    parent_run_id: str
    outcomes: list[TrialOutcome]
    table: Any  # pandas.DataFrame, best first
    complete: bool
    best: TrialOutcome | None = None
    decision: ChampionDecision | None = None


def sweeps_home() -> Path:
    """Where sweeps' Tune experiments live by default: ``<data home>/sweeps``."""
    return data_home() / "sweeps"


def latest_sweep(storage_path: Path | None = None) -> str | None:
    """The name of the most recently started sweep under ``storage_path`` (for ``--resume``)."""
    root = Path(storage_path or sweeps_home())
    states = sorted(root.glob(f"*/{STATE_FILE}"), key=lambda p: p.stat().st_mtime)
    return states[-1].parent.name if states else None


def run_sweep(
    trainable: Callable[[dict], Any],
    space: SweepSpace,
    *,
    name: str,
    trials: int,
    max_epochs: int,
    grace_period: int = 1,
    max_concurrent: int = 1,
    driver_resources: dict[str, float] | None = None,
    storage_path: str | Path | None = None,
    resume: bool = False,
    fingerprint: str = "",
    register: Register | None = None,
    evaluate_champion: Callable[[str], Score | None] | None = None,
    config: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
    extra_callbacks: Sequence[Any] = (),
    experiment: str = EXPERIMENT,
) -> SweepReport:
    """Run (or resume) a sweep and select its best trial.

    Args:
        trainable: a Tune function trainable reporting the contract's metrics once per epoch.
        space: the search space; trials: how many trials to sample (points_to_evaluate included).
        name: the sweep's name (its folder under ``storage_path`` and its parent run's name).
        max_epochs: epochs of a full trial (ASHA's max_t); grace_period: epochs before ASHA may stop one.
        max_concurrent: trials run at the same time; driver_resources: each trial driver's resources.
        resume: restore the interrupted sweep ``name`` (finished trials are kept, not rerun).
        fingerprint: the validation set's fingerprint (compared with the champion's).
        register: logs and registers the best trial's model; None skips registration.
        evaluate_champion: scores a champion that was scored on another validation set.
        config: extra params for the parent run (e.g. the base spec).
        state: extra JSON-able facts kept in the sweep's state file (read back on resume).
        extra_callbacks: more Tune callbacks (e.g. for tests).
    """
    import mlflow
    from ray import tune

    from ctharmony import tracking
    from ctharmony.train.sweep.tracking import MLflowTrialRuns

    root = Path(storage_path or sweeps_home()).resolve()
    path = root / name
    state_file = path / STATE_FILE
    tracking.configure()
    driver_resources = driver_resources or {"CPU": 0.1}
    wrapped = tune.with_resources(trainable, driver_resources)
    if resume:
        if not state_file.is_file() or not tune.Tuner.can_restore(str(path)):
            raise SweepError(f"no sweep to resume at {path}: start it without --resume first")
        state = json.loads(state_file.read_text(encoding="utf-8"))
        parent_run_id = state["parent_run_id"]
        tuner = tune.Tuner.restore(str(path), trainable=wrapped, resume_errored=True)
        log.info("resuming sweep %s from %s (parent run %s)", name, path, parent_run_id)
    else:
        if path.exists():
            raise SweepError(f"sweep {name!r} already exists at {path}: pass --resume or another --name")
        experiment_id = tracking.ensure_experiment(experiment)
        client = mlflow.MlflowClient()
        parent = client.create_run(experiment_id, run_name=name, tags={"ctharmony.sweep": name})
        parent_run_id = parent.info.run_id
        params = {"sweep.trials": trials, "sweep.max_epochs": max_epochs, "sweep.grace_period": grace_period,
                  "sweep.max_concurrent": max_concurrent, "sweep.space": space.describe(),
                  "sweep.validation_fingerprint": fingerprint, **(config or {})}  # fmt: skip
        for key, value in params.items():
            client.log_param(parent_run_id, key, str(value)[:6000])
        callbacks = [MLflowTrialRuns(parent_run_id, space.keys, sweep_name=name), *extra_callbacks]
        tuner = tune.Tuner(
            wrapped,
            param_space=space.to_tune(),
            tune_config=_tune_config(space, trials, max_epochs, grace_period, max_concurrent),
            run_config=tune.RunConfig(name=name, storage_path=str(root), callbacks=callbacks, verbose=1),
        )
        path.mkdir(parents=True, exist_ok=True)
        state_file.write_text(json.dumps({**(state or {}), "parent_run_id": parent_run_id,
                                          "total_trials": space.total_trials(trials)}), encoding="utf-8")
    client = mlflow.MlflowClient()
    client.update_run(parent_run_id, status="RUNNING")
    try:
        tuner.fit()
    except BaseException:
        client.set_terminated(parent_run_id, status="FAILED")
        raise
    return _finish(path, name, parent_run_id, space, fingerprint, register, evaluate_champion)


def _tune_config(space: SweepSpace, trials: int, max_epochs: int, grace_period: int, max_concurrent: int):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    scheduler = ASHAScheduler(
        time_attr="training_iteration", max_t=max(1, max_epochs), grace_period=max(1, min(grace_period, max_epochs))
    )
    # The generator caps concurrency itself (TuneConfig.max_concurrent_trials is ignored with it).
    search = BasicVariantGenerator(points_to_evaluate=[dict(p) for p in space.points_to_evaluate],
                                   random_state=space.seed, max_concurrent=max(1, max_concurrent))  # fmt: skip
    return tune.TuneConfig(metric=OBJECTIVE, mode="max", num_samples=trials, scheduler=scheduler,
                           search_alg=search)  # fmt: skip


def collect_outcomes(path: Path, space: SweepSpace) -> list[TrialOutcome]:
    """Every trial of the sweep at ``path``, each judged by its best reported epoch with a checkpoint."""
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(str(path))
    outcomes = []
    for trial in analysis.trials:
        frame = analysis.trial_dataframes.get(trial.trial_id)
        history = frame.to_dict("records") if frame is not None else []
        with_checkpoint = [m for m in history if _existing(m.get(CHECKPOINT_KEY))]
        chosen = best_epoch(with_checkpoint or history)
        metrics = dict(chosen or {})
        params = {k: _plain(trial.config[k]) for k in space.keys if k in trial.config}
        outcomes.append(
            TrialOutcome(
                trial_id=trial.trial_id,
                params=params,
                score=Score.from_metrics(metrics),
                metrics=metrics,
                checkpoint_path=metrics.get(CHECKPOINT_KEY) if _existing(metrics.get(CHECKPOINT_KEY)) else None,
                status=str(trial.status),
            )
        )
    return outcomes


def _finish(
    path: Path,
    name: str,
    parent_run_id: str,
    space: SweepSpace,
    fingerprint: str,
    register: Register | None,
    evaluate_champion: Callable[[str], Score | None] | None,
) -> SweepReport:
    import mlflow

    client = mlflow.MlflowClient()
    outcomes = collect_outcomes(path, space)
    table = results_table(outcomes)
    ended = {"TERMINATED", "ERROR"}  # trials are created lazily: count them against the expected total
    state = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
    complete = len(outcomes) >= state["total_trials"] and all(o.status in ended for o in outcomes)
    report = SweepReport(name, path, parent_run_id, outcomes, table, complete)
    text = table.to_string(index=False, float_format=lambda v: f"{v:.4g}") if not table.empty else "(no trials)"
    print(f"sweep {name}: {len(outcomes)} trials ({'complete' if complete else 'interrupted'})\n{text}")
    client.log_text(parent_run_id, text + "\n", "sweep_results.txt")
    client.log_text(parent_run_id, table.to_csv(index=False), "sweep_results.csv")
    if not complete:
        client.set_tag(parent_run_id, "ctharmony.sweep.state", "interrupted")
        client.set_terminated(parent_run_id, status="KILLED")
        log.warning("sweep %s is interrupted; continue it with --resume --name %s", name, name)
        return report
    report.best = select_best(outcomes)
    client.set_tag(parent_run_id, "ctharmony.sweep.state", "complete")
    if report.best is not None and report.best.score is not None:
        best = report.best
        client.log_metric(parent_run_id, "best/dice_worst", best.score.dice_worst)
        client.log_metric(parent_run_id, "best/mae_hu", best.score.mae_hu)
        client.set_tag(parent_run_id, "ctharmony.best_trial", best.trial_id)
        for key, value in best.params.items():
            client.log_param(parent_run_id, f"best.{key}", str(value))
        if "decision" in state:  # resumed after it had finished: never register the same best twice
            report.decision = ChampionDecision(**state["decision"])
        elif register is not None:
            model_name, version = register(best, parent_run_id)
            report.decision = promote_if_better(
                client, model_name, version, best.score, fingerprint, evaluate_champion=evaluate_champion
            )
            client.set_tag(parent_run_id, "ctharmony.champion", report.decision.reason)
            state["decision"] = dataclasses.asdict(report.decision)
            (path / STATE_FILE).write_text(json.dumps(state), encoding="utf-8")
            log.info("model %s v%s: %s", model_name, version, report.decision.reason)
    client.set_terminated(parent_run_id, status="FINISHED")
    return report


def _existing(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and Path(value).exists()


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
