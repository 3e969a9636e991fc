"""``ctharmony train-segmenter``, ``train`` and ``sweep``: the reference segmenter, the harmonizer, the λ sweep."""

from __future__ import annotations

from typing import Annotated

import typer

from ctharmony.cli.common import (
    AddressOption,
    AutoscalingConfigOption,
    CatalogOption,
    GpuOption,
    GpusHintOption,
    HarmonizerSpecOption,
    OverrideOption,
    app,
    preflight,
)


@app.command("train-segmenter")
def train_segmenter(
    catalog: CatalogOption,
    masks: Annotated[str, typer.Option("--masks", help="Folder of liver masks <StudyInstanceUID>.nii.gz.")],
    spec: Annotated[str, typer.Option("--spec", help="Segmenter spec: name or YAML path.")] = "liver-unet",
    overrides: OverrideOption = None,
    register: Annotated[bool, typer.Option("--register/--no-register", help="Register ctharmony-liver-unet.")] = True,
    data: Annotated[str | None, typer.Option("--data", help="Training mix YAML: more archives (re-simulated real "
                                             "anatomy) and original real images with masks (docs/real-anatomy.md)."
                                             )] = None,
) -> None:
    """Train the reference liver U-Net on M80 series (and a --data mix); log and register it in MLflow."""
    from pathlib import Path

    from ctharmony.cli.preflight import PreflightError, check_catalog, check_folder, check_spec

    def check() -> None:
        check_catalog(catalog)
        check_folder(masks, "--masks")
        if check_spec(spec, overrides or []).kind != "segmenter":
            raise PreflightError(f"--spec {spec}: a harmonizer spec; train it with `ctharmony train`")
        if data is not None:
            from ctharmony.train.data import TrainingDataError
            from ctharmony.train.segmenter_data import load_data_mix

            try:
                load_data_mix(data)
            except TrainingDataError as err:
                raise PreflightError(f"--data {data}: {err}") from err

    preflight(check)
    from ctharmony.train.segmenter import train_segmenter as run

    outcome = run(Path(catalog), Path(masks), spec, overrides=overrides or [], register=register,
                  data=None if data is None else Path(data))
    typer.echo(f"liver U-Net: validation Dice {outcome.metrics['val/dice']:.3f} (epoch "
               f"{outcome.metrics['best_epoch']:.0f} kept); model {outcome.model_uri}"
               + (f" (ctharmony-liver-unet version {outcome.model.version})" if register else ""))


@app.command("train")
def train_harmonizer(
    catalog: CatalogOption,
    spec: HarmonizerSpecOption = "cpu-small",
    workers: Annotated[int, typer.Option(help="Ray Train DDP workers.")] = 2,
    segmenter: Annotated[str | None, typer.Option(help="Reference segmenter for Dice and perceptual features: "
                                                     "models:/ctharmony-liver-unet/1, a path... (default: "
                                                     "models:/ctharmony-liver-unet@champion if registered).")] = None,
    overrides: OverrideOption = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the newest run of this spec.")] = False,
    name: Annotated[str | None, typer.Option(help="Run name under the storage path (default: spec+time).")] = None,
    storage: Annotated[str | None, typer.Option(help="Checkpoint storage (default: <home>/ray_results).")] = None,
    gpu: GpuOption = None,
    gpus: GpusHintOption = None,
    autoscaling_config: AutoscalingConfigOption = None,
    gpus_per_worker: Annotated[float | None, typer.Option(help="GPUs per DDP worker (default 1; NCCL needs a "
                                                          "whole GPU per worker).")] = None,
    cpus_per_worker: Annotated[float | None, typer.Option(help="CPUs per worker (default 1).")] = None,
    threads: Annotated[int | None, typer.Option(help="Torch threads per worker (train.threads_per_worker).")] = None,
    address: AddressOption = None,
    register: Annotated[bool, typer.Option("--register/--no-register", help="Register ctharmony-harmonizer.")] = True,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report the training pairs (used and refused "
                                          "per study and protocol); no training.")] = False,
) -> None:
    """Train the harmonizer GAN (stage 1 L1, stage 2 L1 + perceptual + GAN) with Ray Train DDP."""
    from pathlib import Path

    from ctharmony import cluster
    from ctharmony.config import ConfigError
    from ctharmony.gpu_capacity import discover_gpu_capacity
    from ctharmony.train.launch import plan_training_pairs, train
    from ctharmony.train.pair_report import format_report

    if dry_run:  # the pairs only: no cluster, no segmenter
        from ctharmony.cli.preflight import check_catalog

        preflight(lambda: check_catalog(catalog))
        typer.echo(format_report(plan_training_pairs(spec, Path(catalog), overrides or [])))
        return

    def check() -> str | None:
        from ctharmony.cli.preflight import (
            PreflightError,
            check_catalog,
            check_file,
            check_spec,
            needs_segmenter,
            resolve_segmenter,
        )

        check_catalog(catalog)
        if autoscaling_config:
            check_file(autoscaling_config, "--autoscaling-config")
        harmonizer = check_spec(spec, overrides or [])
        if harmonizer.kind != "harmonizer":
            raise PreflightError(f"--spec {spec}: a segmenter spec; train it with `ctharmony train-segmenter`")
        return resolve_segmenter(segmenter, harmonizer, required=needs_segmenter(harmonizer))

    segmenter = preflight(check)
    info = cluster.connect(address)
    capacity = discover_gpu_capacity(info.gpus, hint_gpus=gpus, autoscaling_config=autoscaling_config,
                                     joined=not info.embedded)  # fmt: skip
    sets = list(overrides or []) + ([f"train.segmenter={segmenter}"] if segmenter else [])
    sets += [f"train.threads_per_worker={threads}"] if threads else []
    try:
        outcome = train(spec, Path(catalog), workers=workers, use_gpu=gpu, gpus_per_worker=gpus_per_worker,
                        cpus_per_worker=cpus_per_worker, capacity=capacity, storage_path=storage, name=name,
                        resume=resume, register=register, overrides=sets)  # fmt: skip
    except ConfigError as err:
        raise typer.BadParameter(str(err)) from err
    last = outcome.metrics
    for key in sorted(k for k in last if k.startswith("val/mae_hu/")):
        protocol = key.rsplit("/", 1)[1]
        dice, noise = last.get(f"val/dice/{protocol}"), last.get(f"val/noise_ratio/{protocol}")
        typer.echo(f"  {protocol:<4} MAE {last[key]:7.1f} HU (raw {last[f'val/mae_hu_raw/{protocol}']:7.1f})"
                   + (f"  noise {noise:.2f}x M80's (raw {last[f'val/noise_ratio_raw/{protocol}']:.2f}x)"
                      if noise is not None else "")
                   + (f"  Dice {dice:.3f}" if dice is not None else ""))
    typer.echo(f"harmonizer: {outcome.model_uri} (MLflow run {outcome.run_id}"
               + (f", ctharmony-harmonizer version {outcome.registered_version})" if register else ")"))


@app.command("sweep")
def sweep(
    catalog: CatalogOption,
    spec: HarmonizerSpecOption = "cpu-small",
    trials: Annotated[int, typer.Option(help="Trials to sample (per grid point of the space).")] = 8,
    workers_per_trial: Annotated[int, typer.Option(help="Ray Train DDP workers of each trial.")] = 2,
    space: Annotated[str | None, typer.Option(help="Search space YAML (default: the shipped "
                                              "ctharmony/train/sweep/space.yaml).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted sweep (--name, "
                                         "default the latest); finished trials are kept.")] = False,
    name: Annotated[str | None, typer.Option(help="Sweep name (default: sweep-<spec>-<time>).")] = None,
    segmenter: Annotated[str | None, typer.Option(help="Reference segmenter whose Dice is the objective: "
                                                  "models:/ctharmony-liver-unet/1, a path... (default: "
                                                  "models:/ctharmony-liver-unet@champion if registered).")] = None,
    overrides: OverrideOption = None,
    gpu: GpuOption = None,
    gpus: GpusHintOption = None,
    autoscaling_config: AutoscalingConfigOption = None,
    gpus_per_worker: Annotated[float | None, typer.Option(help="GPUs per worker (default 1; 0.5 with 1 worker "
                                                          "per trial packs 2 trials per GPU).")] = None,
    cpus_per_worker: Annotated[float | None, typer.Option(help="CPUs per worker (default: sized to fit).")] = None,
    max_concurrent: Annotated[int | None, typer.Option(help="Cap on trials at a time.")] = None,
    storage: Annotated[str | None, typer.Option(help="Sweep storage (default: <home>/sweeps).")] = None,
    address: AddressOption = None,
) -> None:
    """Sweep the loss weights λ1, λ2, λ3 with Ray Tune; select by worst-protocol liver Dice; MLflow runs."""
    from pathlib import Path

    def check() -> str | None:
        from ctharmony.cli.preflight import PreflightError, check_catalog, check_file, check_spec, resolve_segmenter

        check_catalog(catalog)
        for path, option in ((space, "--space"), (autoscaling_config, "--autoscaling-config")):
            if path:
                check_file(path, option)
        harmonizer = check_spec(spec, overrides or [])
        if harmonizer.kind != "harmonizer":
            raise PreflightError(f"--spec {spec}: a segmenter spec; sweeps train harmonizers")
        return resolve_segmenter(segmenter, harmonizer, required=True)  # its Dice is the objective

    segmenter = preflight(check)
    from ctharmony.train.sweep.training import sweep_lambdas

    report = sweep_lambdas(spec, Path(catalog), trials=trials, workers_per_trial=workers_per_trial, space=space,
                           resume=resume, name=name, segmenter=segmenter, overrides=overrides or [],
                           use_gpu=gpu, cpus_per_worker=cpus_per_worker, max_concurrent=max_concurrent,
                           storage_path=storage, address=address, gpus_per_worker=gpus_per_worker,
                           max_gpus=gpus, autoscaling_config=autoscaling_config)  # fmt: skip
    if not report.complete:
        typer.echo(f"sweep {report.name} interrupted: continue with --resume --name {report.name}", err=True)
        raise typer.Exit(3)
    if report.best is not None:
        typer.echo(f"best trial {report.best.trial_id}: {report.best.params}")
    if report.decision is not None:
        typer.echo(f"ctharmony-harmonizer v{report.decision.version}: {report.decision.reason}"
                   + (" -> champion" if report.decision.promoted else ""))
    typer.echo(f"MLflow parent run {report.parent_run_id}; Tune experiment {report.path}")
