"""Launch harmonizer training: ``build_trainer`` (a Ray Train ``TorchTrainer``) and ``train`` (fit +
MLflow params, per-epoch metrics, model logged and registered).

The recipe, with the Ray-specific lines few and visible: catalog -> study records -> patient split
-> training pairs checked in physical space (:func:`plan_training_pairs`) -> two Ray Datasets (``train``
sharded over workers, ``val`` whole on each) -> ``TorchTrainer`` running
:func:`ctharmony.train.loop.train_loop_per_worker` on N DDP workers. ``build_trainer`` is also what a
Ray Tune function trainable calls (pass ``TuneReportCallback()`` in ``callbacks``).

On GPUs each Train worker holds one GPU and DDP runs over NCCL (gloo on CPU);
:func:`ctharmony.resource_plan.plan_workers` decides, from the GPUs the cluster has *or can get*
(:mod:`ctharmony.gpu_capacity`), unless told.

Example:
    On a Ray cluster, with a catalog (not run as a doctest)::

        trainer = build_trainer("cpu-small", Path("catalog.parquet"), workers=2, use_gpu=False,
                                storage_path="/tmp/ray_results", name="h1")
        result = trainer.fit()
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ctharmony.config import ModelSpec, data_home, to_dict
from ctharmony.gpu_capacity import GpuCapacity
from ctharmony.models.registry import load_spec
from ctharmony.resource_plan import plan_workers
from ctharmony.train.pair_report import PairPlan

log = logging.getLogger(__name__)
EXPERIMENT = "ctharmony-train"


def segmenter_payload(uri: str | None) -> dict[str, Any] | None:
    """The reference segmenter as ``{"spec": dict, "state": state dict}`` (shipped in the loop config, so
    workers on any node get it without reaching the MLflow store)."""
    if not uri:
        return None
    from ctharmony.loaders import load_model

    model = load_model(uri)
    if model.kind != "segmenter":
        raise ValueError(f"train.segmenter {uri} is a {model.kind}, not a segmenter")
    return {"spec": to_dict(model.spec), "state": {k: v.cpu() for k, v in model.net.state_dict().items()}}


def build_trainer(
    spec: ModelSpec | str | Path,
    catalog: Path,
    *,
    workers: int,
    use_gpu: bool,
    storage_path: str,
    name: str,
    callbacks: Sequence[Any] = (),
    resources_per_worker: dict[str, float] | None = None,
    pairs: PairPlan | None = None,
) -> Any:
    """A ``ray.train.torch.TorchTrainer`` for the harmonizer described by ``spec`` on ``catalog``.

    A rerun with the same ``storage_path`` and ``name`` resumes from the latest checkpoint. ``pairs``
    (:func:`plan_training_pairs`) leaves refused inputs out after the patient split (which it does not
    change); without it the workers refuse them as they load the studies.
    """
    import ray.data
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    from ctharmony.archive import read_catalog
    from ctharmony.train.data import pad_to_workers, split_by_patient, study_records
    from ctharmony.train.loop import train_loop_per_worker

    spec = load_spec(spec)
    if spec.kind != "harmonizer":
        raise ValueError(f"spec {spec.name!r} is a {spec.kind}; build_trainer trains harmonizers")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    t = spec.train
    records = study_records(read_catalog(catalog).series(), t.protocols, t.target_protocol)
    train_records, val_records = split_by_patient(records, t.val_fraction, t.seed)
    if pairs is not None:
        train_records, val_records = pairs.restrict(train_records), pairs.restrict(val_records)
    log.info("training on %d studies, validating on %d (by patient)", len(train_records), len(val_records))
    datasets = {
        "train": ray.data.from_items(pad_to_workers(train_records, workers)),
        "val": ray.data.from_items(val_records),
    }
    config = {"spec": to_dict(spec), "segmenter": segmenter_payload(t.segmenter)}
    resources = resources_per_worker or ({"CPU": 1, "GPU": 1} if use_gpu else {"CPU": 1})
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=config,
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=workers, use_gpu=use_gpu, resources_per_worker=resources
        ),
        run_config=ray.train.RunConfig(
            name=name,
            storage_path=str(storage_path),
            callbacks=list(callbacks),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
        ),
        datasets=datasets,
        dataset_config=deterministic_data_config(),
    )


def deterministic_data_config() -> Any:
    """Split ``train`` among the workers in the dataset's order (``preserve_order``: no locality or timing
    decides which worker gets which study), so a seed gives the same shards on every run."""
    import ray.train

    options = ray.train.DataConfig.default_ingest_options()
    options.preserve_order = True
    return ray.train.DataConfig(datasets_to_split=["train"], execution_options={"train": options},
                                enable_shard_locality=False)


@dataclasses.dataclass
class TrainOutcome:
    """What :func:`train` produced."""

    run_id: str
    model_uri: str
    registered_version: str | None
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    checkpoint_path: str


def default_storage() -> Path:
    return data_home() / "ray_results"


def latest_run_name(storage_path: str | Path, prefix: str) -> str | None:
    """The newest run folder named ``<prefix>-*`` under ``storage_path`` (for ``--resume``)."""
    root = Path(storage_path)
    runs = sorted(p for p in root.glob(f"{prefix}-*") if p.is_dir()) if root.is_dir() else []
    return runs[-1].name if runs else None


def load_checkpoint_state(checkpoint: Any) -> dict[str, Any]:
    """The ``state.pt`` dict of a training checkpoint."""
    import torch

    from ctharmony.train.loop import STATE_FILE

    with checkpoint.as_directory() as folder:
        return torch.load(Path(folder) / STATE_FILE, map_location="cpu", weights_only=True)


def plan_training_pairs(spec: ModelSpec | str | Path, catalog: Path, overrides: Sequence[str] = ()) -> PairPlan:
    """The training pairs ``spec`` would use on ``catalog``: used and refused per study and protocol
    (:mod:`ctharmony.train.pair_report`; what ``ctharmony train --dry-run`` prints)."""
    from ctharmony.archive import read_catalog
    from ctharmony.train.data import study_records
    from ctharmony.train.pair_report import plan_pairs

    t = load_spec(spec, overrides).train
    return plan_pairs(study_records(read_catalog(catalog).series(), t.protocols, t.target_protocol),
                      t.target_protocol)


def train(
    spec: ModelSpec | str | Path,
    catalog: Path,
    *,
    workers: int = 2,
    use_gpu: bool | None = False,
    storage_path: str | Path | None = None,
    name: str | None = None,
    resume: bool = False,
    register: bool = True,
    experiment: str = EXPERIMENT,
    overrides: Sequence[str] = (),
    gpus_per_worker: float | None = None,
    cpus_per_worker: float | None = None,
    capacity: GpuCapacity | None = None,
) -> TrainOutcome:
    """Fit the harmonizer, then log params, per-epoch metrics and the EMA generator to MLflow.

    Args:
        spec: spec name, YAML path or object; ``overrides`` (``key=value``) applied on top.
        use_gpu, gpus_per_worker, cpus_per_worker: see :func:`ctharmony.resource_plan.plan_workers`
            (``use_gpu`` None: GPUs when ``capacity``, the GPUs the cluster has or can get, holds one per worker).
        resume: continue the newest run of this spec under ``storage_path`` (or ``name``).
        register: register the model as ``ctharmony-harmonizer``.
    """
    import mlflow

    from ctharmony import tracking
    from ctharmony.models.hu_model import HUModel
    from ctharmony.models.registry import build_network
    from ctharmony.tracking.models import REGISTERED, log_model
    from ctharmony.train.pair_report import format_report, log_to_mlflow

    spec = load_spec(spec, overrides)
    storage = Path(storage_path or default_storage())
    if name is None:
        previous = latest_run_name(storage, spec.name) if resume else None
        name = previous or f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    plan = plan_workers(workers, capacity or GpuCapacity(0.0, 0.0, "none"), use_gpu=use_gpu,
                        gpus_per_worker=gpus_per_worker, cpus_per_worker=cpus_per_worker)  # fmt: skip
    log.info("training on %s", plan.describe())
    pairs = plan_training_pairs(spec, catalog)
    print(format_report(pairs), flush=True)
    trainer = build_trainer(spec, catalog, workers=workers, use_gpu=plan.use_gpu, storage_path=str(storage),
                            name=name, resources_per_worker=dict(plan.resources_per_worker), pairs=pairs)
    result = trainer.fit()
    if result.error is not None:
        raise RuntimeError(f"training run {name} failed: {result.error}") from result.error
    if result.checkpoint is None:
        raise RuntimeError(f"training run {name} produced no checkpoint")
    state = load_checkpoint_state(result.checkpoint)
    net = build_network(spec)
    net.load_state_dict(state["net_g_ema"])
    model = HUModel(net, spec).eval()
    history = list(state["history"])
    with tracking.start_run(experiment, run_name=name, config=spec,
                            tags={"ctharmony.kind": "harmonizer", "ctharmony.workers": str(workers)}) as run:
        perceptual = spec.loss.perceptual_net if spec.loss.perceptual and spec.train.epochs_stage2 else "none"
        mlflow.log_params({"perceptual_extractor_used": perceptual, "catalog": str(catalog)})
        log_to_mlflow(pairs)
        for row in history:
            numbers = {k: float(v) for k, v in row.items() if isinstance(v, int | float)}  # contract keys
            mlflow.log_metrics(numbers, step=int(row["epoch"]))
        registered = REGISTERED["harmonizer"] if register else None
        info = log_model(model, "harmonizer", registered_model_name=registered)
        run_id = run.info.run_id
    return TrainOutcome(
        run_id=run_id,
        model_uri=info.model_uri,
        registered_version=model.version if register else None,
        metrics=dict(history[-1]) if history else {},
        history=history,
        checkpoint_path=result.checkpoint.path,
    )
