"""The real λ sweep: each Tune trial is one Ray Train DDP run of the harmonizer recipe.

:func:`sweep_lambdas` sizes the trials to the cluster (``ctharmony.resource_plan.plan_trials``), pins the reference
segmenter for the whole sweep (a copy beside the sweep folder, so a moving alias cannot change the
objective mid-sweep), launches ``build_trainer(...)`` inside a Tune function trainable with Tune's
``TuneReportCallback`` (Ray 2.60's way to tune a Train V2 trainer), and hands everything to
:func:`ctharmony.train.sweep.tuning.run_sweep`. The best trial's EMA generator is logged in its child run and
registered as ``ctharmony-harmonizer``; the ``champion`` alias moves only if it beats the champion on
the same validation set (a champion scored elsewhere is re-scored here first).

Example::

    report = sweep_lambdas("models/cpu-small.yaml", Path("catalog.parquet"), trials=8,
                           workers_per_trial=2, segmenter="models:/ctharmony-liver-unet/1")
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ctharmony.config import ConfigError, ModelSpec
from ctharmony.resource_plan import TrialPlan, plan_trials
from ctharmony.train.sweep.placement import ReleaseStoppedTrialWorkers
from ctharmony.train.sweep.select import Score, TrialOutcome, validation_fingerprint
from ctharmony.train.sweep.space import SweepSpace
from ctharmony.train.sweep.tuning import STATE_FILE, SweepError, SweepReport, latest_sweep, run_sweep, sweeps_home

log = logging.getLogger(__name__)


def make_trainable(spec: ModelSpec, catalog: Path, space: SweepSpace, plan: TrialPlan, train_root: Path):
    """A Tune function trainable: the trial's λ applied to ``spec``, trained by one Train DDP run."""
    catalog, train_root = Path(catalog).resolve(), Path(train_root)

    def harmonizer_trial(config: dict) -> None:
        from ray import tune
        from ray.tune.integration.ray_train import TuneReportCallback

        from ctharmony.models.registry import load_spec
        from ctharmony.train.launch import build_trainer

        trial_spec = load_spec(spec, space.overrides(config))
        trainer = build_trainer(
            trial_spec, catalog, workers=plan.workers, use_gpu=plan.use_gpu, storage_path=str(train_root),
            name=tune.get_context().get_trial_id(), callbacks=[TuneReportCallback()],
            resources_per_worker=dict(plan.resources_per_worker),
        )  # fmt: skip
        result = trainer.fit()
        if result.error is not None:
            raise RuntimeError(f"trial {tune.get_context().get_trial_id()} failed: {result.error}") from (
                result.error
            )

    return harmonizer_trial


def pin_segmenter(uri: str, folder: Path, *, reuse: bool = False) -> tuple[str, str]:
    """Copy the segmenter to ``folder`` for the whole sweep; returns (local path, identity).

    With ``reuse`` (a resumed sweep) an existing copy is kept, so every trial sees the same segmenter.
    """
    from ctharmony.loaders import load_model
    from ctharmony.models.io import save_model

    if reuse and (folder / "identity.json").is_file():
        return str(folder), json.loads((folder / "identity.json").read_text(encoding="utf-8"))["identity"]
    model = load_model(uri)
    if model.kind != "segmenter":
        raise ConfigError(f"--segmenter {uri} is a {model.kind}, not a segmenter")
    shutil.rmtree(folder, ignore_errors=True)
    save_model(model, folder)
    # The weights themselves identify the segmenter (an alias or a path may point elsewhere tomorrow).
    identity = "sha256:" + hashlib.sha256((folder / "weights.pt").read_bytes()).hexdigest()[:16]
    (folder / "identity.json").write_text(json.dumps({"identity": identity, "source": uri}), encoding="utf-8")
    return str(folder), identity


def validation_records(spec: ModelSpec, catalog: Path) -> list[dict[str, Any]]:
    """The held-out studies that training validates on (the training recipe's own split)."""
    from ctharmony.archive import read_catalog
    from ctharmony.train.data import split_by_patient, study_records

    t = spec.train
    records = study_records(read_catalog(catalog).series(), t.protocols, t.target_protocol)
    return split_by_patient(records, t.val_fraction, t.seed)[1]


def score_on_validation(spec: ModelSpec, records: Sequence[dict[str, Any]]) -> Callable[[str], Score | None]:
    """A scorer of any harmonizer URI on these validation studies with ``spec``'s segmenter."""

    def score(uri: str) -> Score | None:
        from ctharmony.loaders import load_model
        from ctharmony.train.data import load_study
        from ctharmony.train.validate import metrics_from_sums, validation_sums

        t = spec.train
        harmonizer, segmenter = load_model(uri), load_model(t.segmenter)
        studies = [load_study(r, t.target_protocol) for r in records]
        sums = validation_sums(harmonizer, segmenter, studies, t.protocols, t.target_protocol, t.val_slices)
        window = harmonizer.spec.intensity.hu_max - harmonizer.spec.intensity.hu_min
        return Score.from_metrics(metrics_from_sums(sums, t.protocols, window))

    return score


def register_best(spec: ModelSpec, space: SweepSpace) -> Callable[[TrialOutcome, str], tuple[str, str]]:
    """Log the best trial's EMA generator in its child run and register it as ``ctharmony-harmonizer``."""

    def register(best: TrialOutcome, parent_run_id: str) -> tuple[str, str]:
        import mlflow
        import torch

        from ctharmony.models.hu_model import HUModel
        from ctharmony.models.registry import build_network, load_spec
        from ctharmony.tracking.models import REGISTERED, log_model
        from ctharmony.train.loop import STATE_FILE as CHECKPOINT_STATE
        from ctharmony.train.sweep.tracking import child_runs

        if best.checkpoint_path is None:
            raise SweepError(f"best trial {best.trial_id} left no checkpoint to register")
        trial_spec = load_spec(spec, space.overrides(best.params))
        state = torch.load(Path(best.checkpoint_path) / CHECKPOINT_STATE, map_location="cpu", weights_only=True)
        net = build_network(trial_spec)
        net.load_state_dict(state["net_g_ema"])
        model = HUModel(net, trial_spec).eval()
        runs = [r for r in child_runs(parent_run_id) if r.data.tags.get("ctharmony.trial_id") == best.trial_id]
        run_id = runs[0].info.run_id if runs else parent_run_id
        name = REGISTERED["harmonizer"]
        with mlflow.start_run(run_id=run_id):
            mlflow.set_tag("ctharmony.sweep_best", "true")
            mlflow.log_param("checkpoint_epoch", int(state["epoch"]) + 1)
            info = log_model(model, "harmonizer", registered_model_name=name)
        return name, str(info.registered_model_version)

    return register


def sweep_lambdas(
    spec: str | Path | ModelSpec,
    catalog: Path,
    *,
    trials: int,
    workers_per_trial: int,
    space: str | Path | SweepSpace | None = None,
    resume: bool = False,
    name: str | None = None,
    segmenter: str | None = None,
    overrides: Sequence[str] = (),
    use_gpu: bool | None = None,
    cpus_per_worker: float | None = None,
    max_concurrent: int | None = None,
    storage_path: str | Path | None = None,
    address: str | None = None,
    gpus_per_worker: float | None = None,
    max_gpus: int | None = None,
    autoscaling_config: str | None = None,
) -> SweepReport:
    """Sweep λ1, λ2, λ3 (and whatever else ``space`` names) over real training runs; see module doc.

    ``use_gpu`` None: GPU workers when the cluster has or can get them (:mod:`ctharmony.gpu_capacity`,
    with ``max_gpus`` as the hint and ``autoscaling_config`` a cluster.yaml); trials are packed onto the
    GPUs the cluster can have (``gpus_per_worker`` < 1 packs several one-worker trials per GPU).
    """
    from ctharmony import cluster
    from ctharmony.gpu_capacity import discover_gpu_capacity
    from ctharmony.models.registry import load_spec

    base = load_spec(spec, overrides)
    space = space if isinstance(space, SweepSpace) else SweepSpace.load(space)
    segmenter = segmenter or base.train.segmenter
    if not segmenter:
        raise ConfigError("the sweep's objective is the reference segmenter's Dice: pass --segmenter MODEL "
                          "(e.g. models:/ctharmony-liver-unet/1) or set train.segmenter in the spec")
    root = Path(storage_path or sweeps_home()).resolve()
    if resume and name is None:
        name = latest_sweep(root)
        if name is None:
            raise SweepError(f"no sweep to resume under {root}")
    name = name or f"sweep-{base.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if not resume and (root / name).exists():
        raise SweepError(f"sweep {name!r} already exists at {root / name}: pass --resume or another --name")
    local_segmenter, identity = pin_segmenter(segmenter, root / f"{name}-segmenter", reuse=resume)
    base = load_spec(base, [f"train.segmenter={local_segmenter}"])
    t = base.train
    from ctharmony.train.data import study_key

    records = validation_records(base, catalog)
    fingerprint = validation_fingerprint(
        [study_key(r) for r in records], segmenter=identity, protocols=list(t.protocols),
        target=t.target_protocol, val_slices=t.val_slices,
    )  # fmt: skip
    state_file = root / name / STATE_FILE
    if resume and state_file.is_file():
        # written when the sweep started
        started = json.loads(state_file.read_text(encoding="utf-8")).get("fingerprint")
        if started and started != fingerprint:
            raise SweepError(f"sweep {name}: the validation set or segmenter changed since it started")
    info = cluster.connect(address, quiet=True)
    capacity = discover_gpu_capacity(info.gpus, hint_gpus=max_gpus, autoscaling_config=autoscaling_config,
                                     joined=not info.embedded)  # fmt: skip
    plan = plan_trials(info.cpus, capacity, workers_per_trial, use_gpu=use_gpu, cpus_per_worker=cpus_per_worker,
                       trials=space.total_trials(trials), gpus_per_worker=gpus_per_worker)
    log.info("sweep resources: %s; %s", plan.describe(), capacity.describe())
    concurrent = min(plan.max_concurrent, max_concurrent or plan.max_concurrent)
    epochs = t.epochs_stage1 + t.epochs_stage2
    report = run_sweep(
        make_trainable(base, catalog, space, plan, root / name / "train"), space, name=name, trials=trials,
        max_epochs=epochs, grace_period=min(epochs, t.epochs_stage1 + 1), max_concurrent=concurrent,
        driver_resources=plan.driver, storage_path=root, resume=resume, fingerprint=fingerprint,
        register=register_best(base, space), evaluate_champion=score_on_validation(base, records),
        state={"fingerprint": fingerprint, "spec": base.name, "catalog": str(catalog)},
        extra_callbacks=[ReleaseStoppedTrialWorkers()],
        config={"spec": base.name, "catalog": str(catalog), "segmenter": identity, "resources": plan.describe(),
                "workers_per_trial": workers_per_trial, "cluster": info.describe()},
    )  # fmt: skip
    return report
