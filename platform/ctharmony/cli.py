"""The ``ctharmony`` command line: one Typer app.

Heavy libraries (Ray, torch, MLflow, pydicom) are imported inside the commands so that ``--help``
answers instantly. Every command here works end to end; nothing is exposed before it does. Commands
check their files, specs and model URIs (:mod:`ctharmony.preflight`) before any cluster starts, and a
bad one ends the command with one line on stderr (exit code 2).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any, NoReturn

import typer

app = typer.Typer(
    name="ctharmony",
    help="Harmonize multi-protocol CT archives to the 80 keV reference look, on Ray, tracked in MLflow.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

AddressOption = Annotated[
    str | None,
    typer.Option("--address", help="Ray cluster address (default: $RAY_ADDRESS, else an embedded local cluster)."),
]
CatalogOption = Annotated[str, typer.Option("--catalog", help="Catalog Parquet file (ctharmony catalog).")]
HarmonizerSpecOption = Annotated[str, typer.Option("--spec", help="Harmonizer spec: name or YAML path.")]
OverrideOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a spec value: key=value (repeatable), e.g. --set train.epochs_stage1=3."),
]


def _fail(err: Exception) -> NoReturn:
    """End the command with one line on stderr (exit code 2), no traceback."""
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(2) from err


def _preflight(check: Callable[[], Any]) -> Any:
    """Run ``check`` (file, spec and model checks) before any cluster starts; a failure ends the command."""
    from ctharmony.preflight import PreflightError

    try:
        return check()
    except PreflightError as err:
        _fail(err)


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    """ctharmony: CT image standardization at archive scale."""
    _setup_logging(verbose)


@app.command()
def info(
    address: AddressOption = None,
    connect: Annotated[bool, typer.Option(help="Connect to Ray and report its live resources.")] = False,
) -> None:
    """Print versions, the Ray cluster that would be used, the MLflow tracking URI and the data home."""
    from importlib import metadata

    from ctharmony import __version__, cluster, tracking
    from ctharmony.archive import pseudonym
    from ctharmony.config import data_home

    typer.echo(f"ctharmony {__version__} (python {sys.version.split()[0]})")
    for package in ("ray", "torch", "mlflow", "pydicom", "highdicom", "SimpleITK", "pyarrow"):
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            version = "not installed"
        typer.echo(f"  {package:<10} {version}")
    target = cluster.resolve_address(address)
    if connect or target:
        described = cluster.connect(target, quiet=True).describe()
    else:
        cpus, gpus = cluster.local_resources()
        described = f"embedded local Ray cluster (started on demand): 1 node, {cpus} CPUs, {gpus} GPUs"
    typer.echo(f"Ray:       {described}")
    typer.echo(f"MLflow:    {tracking.tracking_uri()}")
    typer.echo(f"Data home: {data_home()}")
    typer.echo(f"Pseudonym salt: {pseudonym.salt_source()}")


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="Port to serve on (0: a free one).")] = 0,
    host: Annotated[str, typer.Option(help="Interface to bind; loopback unless you mean otherwise.")] = "127.0.0.1",
) -> None:
    """Start the MLflow UI on the tracking store in force (runs until interrupted)."""
    from ctharmony import tracking
    from ctharmony.net import free_port

    uri = tracking.configure()
    if not tracking.is_loopback(host):
        typer.echo(f"WARNING: the MLflow server has no authentication; --host {host} lets anyone who reaches "
                   "this machine read and change every run, model and report. Prefer 127.0.0.1 and an SSH "
                   "tunnel.", err=True)
    port = port or free_port(host)
    args = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri]
    root = tracking.artifact_root()
    if root is not None:
        args += ["--artifacts-destination", str(root)]
    args += ["--host", host, "--port", str(port), "--workers", "1"]
    typer.echo(f"MLflow UI on http://{host}:{port}  (store: {uri}); Ctrl-C to stop", err=True)
    sys.stdout.flush()
    os.execv(sys.executable, args)  # replace this process: signals reach the server directly


@app.command()
def evaluate(
    results: Annotated[list[str], typer.Option("--results", help="results.parquet of a conversion (repeatable: "
                                               "e.g. the GAN's and the baselines').")],
    out: Annotated[str, typer.Option("--out", help="Report folder (report.md, report.html, plots/, CSVs).")],
    reference_protocol: Annotated[str, typer.Option(help="Protocol whose original mask is the reference.")] = "M80",
    truth: Annotated[str | None, typer.Option(help="Folder of true masks <StudyInstanceUID>.nii.gz.")] = None,
    truth_images: Annotated[str | None, typer.Option(help="Folder of noise-free truth images "
                                                     "<StudyInstanceUID>/T80.npz (ctharmony simulate's OUT/truth): "
                                                     "MAE / SSIM to T80 and truth-based noise.")] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment to log the run in.")] = "ctharmony-evaluate",
    catalog: Annotated[str | None, typer.Option(help="Catalog for the original images of the example "
                                                "slices (default: catalog.parquet beside the results).")] = None,
    mlflow: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="Log the evaluation to MLflow.")] = True,
) -> None:
    """Cohort report: Dice, volume difference, CCC (95% CI), Bland-Altman, paired t-test per protocol and method."""
    from ctharmony.preflight import check_catalog, check_file, check_folder

    def check() -> None:
        for path in results:
            check_file(path, "--results")
        if truth:
            check_folder(truth, "--truth")
        if truth_images:
            check_folder(truth_images, "--truth-images")
        if catalog:
            check_catalog(catalog)

    _preflight(check)
    from ctharmony.evaluate.cohort import ResultsError
    from ctharmony.evaluate.metrics import MaskFileError
    from ctharmony.evaluate.run import evaluate as run_evaluation

    try:
        done = run_evaluation(results, out, reference_protocol=reference_protocol, truth=truth,
                              experiment=experiment if mlflow else None, catalog=catalog,
                              truth_images=truth_images)
    except (ResultsError, MaskFileError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    typer.echo(done.headline)
    typer.echo(f"\nReport: {done.files.html}  (Markdown: {done.files.markdown})")
    if done.run_id:
        typer.echo(f"MLflow run {done.run_id} in experiment {experiment!r}: `ctharmony ui` to browse it.")


GpuOption = Annotated[bool | None, typer.Option("--gpu/--no-gpu", help="Use GPUs (default: when the cluster has "
                                                  "them or its autoscaler can start GPU workers).")]
GpusHintOption = Annotated[int | None, typer.Option("--gpus", help="GPUs the cluster can have, when its autoscaler "
                                                    "config cannot be read (a hint for planning).")]
AutoscalingConfigOption = Annotated[str | None, typer.Option(help="cluster.yaml whose GPU node types the "
                                                             "cluster can start (default: the head's).")]


@app.command()
def convert(
    catalog: Annotated[str | None, typer.Option("--catalog", help="Catalog Parquet file (ctharmony catalog).")] = None,
    harmonizer: Annotated[str | None, typer.Option(help="Harmonizer: models:/name@alias, runs:/..., a path.")] = None,
    segmenter: Annotated[str | None, typer.Option(help="Liver segmenter: models:/name@alias, or a path (default: "
                                                  "models:/ctharmony-liver-unet@champion if registered).")] = None,
    out: Annotated[str | None, typer.Option("--out", help="Output folder (resumable: reruns convert what is "
                                            "missing).")] = None,
    address: AddressOption = None,
    plan: Annotated[bool, typer.Option("--plan", help="Print the resource plan as JSON and exit.")] = False,
    gpu: GpuOption = None,
    gpus: GpusHintOption = None,
    autoscaling_config: AutoscalingConfigOption = None,
    gpus_per_actor: Annotated[float | None, typer.Option(help="GPUs per actor (default 0.5: a harmonizer and a "
                                                         "segmenter share each GPU).")] = None,
    actors_per_gpu: Annotated[int | None, typer.Option(help="Actors sharing each GPU (2: one pair); instead of "
                                                       "--gpus-per-actor.")] = None,
    cpus_per_actor: Annotated[float | None, typer.Option(help="CPUs per actor (default 1 with GPUs, 0.5 on "
                                                         "CPU).")] = None,
    batch_slices: Annotated[int | None, typer.Option(help="Slices per forward pass (default: from free GPU "
                                                     "memory; 8 on CPU).")] = None,
    precision: Annotated[str, typer.Option(help="auto (bf16 where supported, else fp16; fp32 on CPU), bf16, "
                                           "fp16 or fp32.")] = "auto",
    compile: Annotated[bool, typer.Option("--compile/--no-compile", help="torch.compile the models (eager if "
                                          "compiling fails).")] = False,
    tile: Annotated[int | None, typer.Option(help="Tile slices larger than this many pixels a side.")] = None,
    threads: Annotated[int | None, typer.Option(help="Torch threads per actor.")] = None,
    limit: Annotated[int | None, typer.Option(help="Convert at most this many pending series.")] = None,
    on_tilt: Annotated[str, typer.Option(help="Gantry-tilted series: convert (slice by slice, written with their "
                                         "sheared geometry) or skip.")] = "convert",
    on_gap: Annotated[str, typer.Option(help="Series with missing slices or uneven spacing: convert (true slice "
                                        "positions kept) or skip.")] = "convert",
    on_unknown: Annotated[str, typer.Option(help="Series of unknown protocol: convert or skip.")] = "convert",
    harmonize_reference: Annotated[bool, typer.Option("--harmonize-reference", help="Harmonize reference-protocol "
                                                      "(M80) series too (default: passed through unchanged).")] = False,
) -> None:
    """Harmonize and segment every ok series of a catalog (Ray Data actor pools; DICOM + DICOM SEG out)."""
    from ctharmony.infer.pipeline import ConvertOptions, convert_archive
    from ctharmony.infer.policy import Policies
    from ctharmony.infer.resume import OutputBusyError

    try:
        policies = Policies(on_tilt=on_tilt, on_gap=on_gap, on_unknown=on_unknown)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err

    if actors_per_gpu is not None and gpus_per_actor is not None:
        raise typer.BadParameter("give --gpus-per-actor or --actors-per-gpu, not both")
    if actors_per_gpu is not None and actors_per_gpu < 1:
        raise typer.BadParameter(f"must be >= 1, got {actors_per_gpu}", param_hint="--actors-per-gpu")
    share = 1.0 / actors_per_gpu if actors_per_gpu else gpus_per_actor
    options = ConvertOptions(batch_slices=batch_slices, tile=tile, threads=threads, limit=limit, use_gpu=gpu,
                             max_gpus=gpus, autoscaling_config=autoscaling_config, actor_cpus=cpus_per_actor,
                             precision=precision, compile=compile, policies=policies,
                             reference_passthrough=not harmonize_reference,
                             **({"gpus_per_actor": share} if share is not None else {}))  # fmt: skip
    if plan:
        from ctharmony.infer.plan import plan_for_cluster

        try:
            typer.echo(plan_for_cluster(options, address).to_json())
        except ValueError as err:
            raise typer.BadParameter(str(err)) from err
        return
    missing = [f"--{n}" for n, v in (("catalog", catalog), ("harmonizer", harmonizer), ("out", out)) if not v]
    if missing:
        raise typer.BadParameter(f"missing {', '.join(missing)} (only --plan runs without them)")

    def check() -> tuple[str, str]:
        from ctharmony.preflight import (
            CHAMPION_SEGMENTER,
            PreflightError,
            check_catalog,
            check_file,
            check_model,
            registered,
        )

        check_catalog(catalog)
        if autoscaling_config:
            check_file(autoscaling_config, "--autoscaling-config")
        if not segmenter and not registered(CHAMPION_SEGMENTER):
            raise PreflightError(f"no --segmenter given and no {CHAMPION_SEGMENTER} registered: pass --segmenter "
                                 "MODEL")
        return check_model(harmonizer, "--harmonizer"), check_model(segmenter or CHAMPION_SEGMENTER, "--segmenter")

    harmonizer, segmenter = _preflight(check)
    try:
        results = convert_archive(catalog, harmonizer, segmenter, out, address=address, options=options)
    except OutputBusyError as err:  # another run writes OUT: say who, exit without a traceback
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    counts = results["status"].value_counts()
    summary = ", ".join(f"{int(counts.get(status, 0))} {status}" for status in ("done", "failed", "skipped", "pending"))
    typer.echo(f"{len(results)} series: {summary} -> {out}/results.parquet")


@app.command()
def phantom(
    out: Annotated[str, typer.Argument(help="Archive folder to write (dicom/, masks/, phantom.parquet).")],
    patients: Annotated[int, typer.Option(help="Patients (one study of six series each).")] = 4,
    slices: Annotated[int, typer.Option(help="Slices per series.")] = 16,
    size: Annotated[int, typer.Option(help="Rows = columns of each image.")] = 128,
    sites: Annotated[int, typer.Option(help="Scanner sites (heterogeneous tags, noise, FOV, thickness).")] = 2,
    seed: Annotated[int, typer.Option(help="Generator seed (same seed, same pixels).")] = 0,
    preview: Annotated[bool, typer.Option("--preview", help="Also write preview.png (six protocols).")] = False,
    workers: Annotated[int, typer.Option(help="Processes generating patients in parallel.")] = 1,
    tilt_site: Annotated[bool, typer.Option("--tilt-site", help="Add site-tilt: a GE-like site scanning with "
                                            "10-20 degrees of gantry tilt (sheared series).")] = False,
    gap_studies: Annotated[int, typer.Option(help="Studies missing 2 slices in the middle (a gap).")] = 0,
    variable_spacing_studies: Annotated[int, typer.Option(help="Studies with uneven slice spacing.")] = 0,
) -> None:
    """Generate the physics-based dual-energy CT phantom archive (FBP, IR, M40, M60, M80, OPT)."""
    from pathlib import Path

    from ctharmony.phantom import generate_archive
    from ctharmony.phantom.cases import GeometryCases

    root = Path(out)
    try:
        cases = GeometryCases(tilt_site=tilt_site, gap_studies=gap_studies,
                              variable_spacing_studies=variable_spacing_studies)
        table = generate_archive(root, patients=patients, slices=slices, size=size, sites=sites, seed=seed,
                                 preview=preview, workers=workers, geometry=cases)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    typer.echo(f"wrote {len(table)} studies x 6 series to {root / 'dicom'}; table {root / 'phantom.parquet'}")
    if preview:
        typer.echo(f"preview: {root / 'preview.png'}")


@app.command()
def simulate(
    out: Annotated[str, typer.Argument(help="Archive folder to write (dicom/, masks/, truth/, phantom.parquet).")],
    patients: Annotated[int, typer.Option(help="Patients (one study each, at site i % len(sites)).")] = 2,
    slices: Annotated[int, typer.Option(help="Slices per series.")] = 8,
    size: Annotated[int, typer.Option(help="Rows = columns of each image.")] = 128,
    sites: Annotated[str, typer.Option(help="Comma-separated packaged site names or site YAML paths.")] = (
        "siemens-force,ge-revolution"),
    seed: Annotated[int, typer.Option(help="Generator seed (same seed, same pixels).")] = 0,
    backend: Annotated[str, typer.Option(help="Projector backend: svmbir or skimage.")] = "svmbir",
    anatomy: Annotated[str, typer.Option(help="phantom (drawn anatomy) or real (--real-series, --real-mask).")] = (
        "phantom"),
    real_series: Annotated[str | None, typer.Option(help="Real anatomy: a folder of one axial CT series.")] = None,
    real_mask: Annotated[str | None, typer.Option(help="Real anatomy: its liver mask (NIfTI).")] = None,
    series: Annotated[str | None, typer.Option(help="Comma-separated series to write, e.g. FBP,IR,M40,M80 "
                                                    "(default: all).")] = None,
) -> None:
    """Projection-domain scanner simulation (spectra, Poisson noise, FBP kernels, IR, dual-energy mono).

    Real anatomy: ``ctharmony simulate OUT --anatomy real --real-series DIR --real-mask FILE --series M40,M80``.
    """
    from pathlib import Path

    from ctharmony.config import ConfigError
    from ctharmony.simulate import simulate_archive

    if anatomy == "real" and (real_series is None or real_mask is None):
        raise typer.BadParameter("--anatomy real needs --real-series DIR and --real-mask FILE", param_hint="--anatomy")
    try:
        table = simulate_archive(Path(out), patients=patients, slices=slices, size=size, seed=seed, backend=backend,
                                 sites=[s.strip() for s in sites.split(",") if s.strip()],
                                 series=None if series is None else [s.strip() for s in series.split(",") if s.strip()],
                                 anatomy=anatomy, real_series=None if real_series is None else Path(real_series),
                                 real_mask=None if real_mask is None else Path(real_mask))
    except (ConfigError, ValueError) as err:
        raise typer.BadParameter(str(err)) from err
    typer.echo(f"wrote {len(table)} simulated studies to {Path(out) / 'dicom'}; table {Path(out) / 'phantom.parquet'}")


@app.command()
def catalog(
    archive: Annotated[str, typer.Argument(help="Folder of DICOM files (any layout; links are not followed).")],
    out: Annotated[str, typer.Option("--out", help="Catalog Parquet file to write.")] = "catalog.parquet",
    address: AddressOption = None,
    rules: Annotated[str | None, typer.Option("--rules", help="YAML protocol rules tried before the defaults.")] = None,
    chunk_size: Annotated[int | None, typer.Option(help="Files per header-read task (default: automatic).")] = None,
) -> None:
    """Catalog a DICOM archive on Ray (headers only): one Parquet row per series, plus quarantine rows."""
    from pathlib import Path

    from ctharmony.archive.catalog import build_catalog, summarize

    if not Path(archive).is_dir():
        raise typer.BadParameter(f"{archive} is not a folder", param_hint="ARCHIVE")
    if rules:
        from ctharmony.preflight import check_file

        _preflight(lambda: check_file(rules, "--rules"))
    df = build_catalog(Path(archive), Path(out), address, rules=rules, chunk_size=chunk_size)
    typer.echo(summarize(df))
    typer.echo(f"catalog: {out} ({len(df)} rows, {df.attrs['files']} files, {df.attrs['seconds']:.1f} s)")


@app.command("train-segmenter")
def train_segmenter(
    catalog: CatalogOption,
    masks: Annotated[str, typer.Option("--masks", help="Folder of liver masks <StudyInstanceUID>.nii.gz.")],
    spec: Annotated[str, typer.Option("--spec", help="Segmenter spec: name or YAML path.")] = "liver-unet",
    overrides: OverrideOption = None,
    register: Annotated[bool, typer.Option("--register/--no-register", help="Register ctharmony-liver-unet.")] = True,
) -> None:
    """Train the reference liver U-Net on M80 series only; log and register it in MLflow."""
    from pathlib import Path

    from ctharmony.preflight import PreflightError, check_catalog, check_folder, check_spec

    def check() -> None:
        check_catalog(catalog)
        check_folder(masks, "--masks")
        if check_spec(spec, overrides or []).kind != "segmenter":
            raise PreflightError(f"--spec {spec}: a harmonizer spec; train it with `ctharmony train`")

    _preflight(check)
    from ctharmony.train.segmenter import train_segmenter as run

    outcome = run(Path(catalog), Path(masks), spec, overrides=overrides or [], register=register)
    typer.echo(f"liver U-Net: validation Dice {outcome.metrics['val/dice']:.3f}; model {outcome.model_uri}"
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
) -> None:
    """Train the harmonizer GAN (stage 1 L1, stage 2 L1 + perceptual + GAN) with Ray Train DDP."""
    from pathlib import Path

    from ctharmony import cluster
    from ctharmony.config import ConfigError
    from ctharmony.gpu_capacity import discover_gpu_capacity
    from ctharmony.train.launch import train

    def check() -> str | None:
        from ctharmony.preflight import (
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

    segmenter = _preflight(check)
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
                                              "ctharmony/train/sweep.yaml).")] = None,
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
        from ctharmony.preflight import PreflightError, check_catalog, check_file, check_spec, resolve_segmenter

        check_catalog(catalog)
        for path, option in ((space, "--space"), (autoscaling_config, "--autoscaling-config")):
            if path:
                check_file(path, option)
        harmonizer = check_spec(spec, overrides or [])
        if harmonizer.kind != "harmonizer":
            raise PreflightError(f"--spec {spec}: a segmenter spec; sweeps train harmonizers")
        return resolve_segmenter(segmenter, harmonizer, required=True)  # its Dice is the objective

    segmenter = _preflight(check)
    from ctharmony.train.sweep_training import sweep_lambdas

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


@app.command()
def demo(
    out: Annotated[str, typer.Option(help="Folder for the archives, models' outputs and the report.")] = "demo-out",
    train_patients: Annotated[int, typer.Option(help="Patients for training.")] = 8,
    test_patients: Annotated[int, typer.Option(help="Patients for the test cohort.")] = 6,
    size: Annotated[int, typer.Option(help="Image matrix (pixels).")] = 96,
    slices: Annotated[int, typer.Option(help="Slices per series.")] = 24,
    seed: Annotated[int, typer.Option(help="Archive seed.")] = 7,
    archive: Annotated[str, typer.Option(help="phantom (the image-domain phantom) or simulated (projection-domain "
                                              "scanner physics at two sites; use --harmonizer-spec cpu-texture).")]
    = "phantom",
    harmonizer_spec: Annotated[str, typer.Option(help="The harmonizer's spec (name or YAML path).")] = "cpu-small",
) -> None:
    """The main job on the embedded default: synthetic archive -> catalog -> training -> `ray job submit` -> report."""
    from pathlib import Path

    from ctharmony.demo import ARCHIVES, DemoPlan, run_demo

    if archive not in ARCHIVES:
        raise typer.BadParameter(f"--archive must be one of {', '.join(ARCHIVES)}, got {archive!r}")
    plan = DemoPlan(train_patients=train_patients, test_patients=test_patients, size=size, slices=slices, seed=seed,
                    archive=archive, harmonizer_spec=harmonizer_spec)
    outcome = run_demo(Path(out), plan)
    typer.echo("\n" + outcome.headline)
    typer.echo(f"\nReport:  {outcome.report}")
    typer.echo(f"Results: {outcome.results}")
    typer.echo(f"Models:  harmonizer {outcome.harmonizer_uri}; segmenter {outcome.segmenter_uri}")
    typer.echo("Timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in outcome.seconds.items()))
    typer.echo("Compare runs in the MLflow UI:  ctharmony ui --port 5000  ->  http://127.0.0.1:5000")


@app.command()
def benchmark(
    out: Annotated[str, typer.Option(help="Folder for the simulated archives, models' outputs and the report.")]
    = "benchmark-out",
    real_series: Annotated[list[str] | None, typer.Option(
        "--real-series", help="A real CT series folder (DICOM): the real-anatomy cohort re-simulates it. "
        "Repeatable: one real case per --real-series, paired in order with --real-mask.")] = None,
    real_mask: Annotated[list[str] | None, typer.Option(
        "--real-mask", help="The real series' liver mask (NIfTI); repeatable, in --real-series' order.")] = None,
    seeds: Annotated[int, typer.Option(help="Training seeds (0..N-1): one segmenter and one harmonizer each; "
                                       "3 for the verdicts, 1 for a quick look.")] = 3,
    train_patients: Annotated[int, typer.Option(help="Simulated phantom patients for training.")] = 16,
    train_augment: Annotated[bool, typer.Option(help="Scan the training patients at drawn doses.")] = True,
    test_patients: Annotated[int, typer.Option(help="Synthetic test patients (training sites).")] = 6,
    real_patients: Annotated[int, typer.Option(help="Simulations of each real case (as it is, then augmented).")]
    = 3,
    unseen_patients: Annotated[int, typer.Option(help="Patients at the unseen site.")] = 6,
    size: Annotated[int, typer.Option(help="Image matrix (pixels).")] = 128,
    slices: Annotated[int, typer.Option(help="Slices per series.")] = 16,
    seed: Annotated[int, typer.Option(help="Simulation seed.")] = 11,
    harmonizer_set: Annotated[list[str] | None, typer.Option(
        "--harmonizer-set", help="KEY=VALUE for the harmonizer's spec (cpu-texture), e.g. loss.texture=0 "
        "train.epochs_stage2=2 for cpu-small, the paper's recipe. Repeatable.")] = None,
) -> None:
    """Where the GAN beats a linear map: train per seed on simulated sites, test synthetic / real anatomy / an
    unseen site; figures with 95 % CIs over exams and seeds, verdicts met / not met / undecided."""
    from pathlib import Path

    from ctharmony.benchmark import BenchmarkPlan, run_benchmark

    series, masks = list(real_series or ()), list(real_mask or ())
    if len(series) != len(masks):
        raise typer.BadParameter(f"give one --real-mask per --real-series ({len(series)} series, {len(masks)} masks)")
    for path in (*series, *masks):
        if not Path(path).exists():
            raise typer.BadParameter(f"{path} does not exist")
    if seeds < 1:
        raise typer.BadParameter("--seeds must be at least 1")
    plan = BenchmarkPlan(
        train_patients=train_patients, test_patients=test_patients, real_patients=real_patients,
        unseen_patients=unseen_patients, size=size, slices=slices, seed=seed, train_augment=train_augment,
        harmonizer_overrides=tuple(harmonizer_set or ()), seeds=tuple(range(seeds)),
        real_cases=tuple((Path(s).resolve(), Path(m).resolve()) for s, m in zip(series, masks, strict=True)),
    )
    outcome = run_benchmark(Path(out), plan)
    for target in outcome.document["targets"]:
        value = "-" if target["value"] is None else f"{target['value']:.4g}"
        ci = "" if target.get("ci_low") is None else f" [{target['ci_low']:.4g}, {target['ci_high']:.4g}]"
        typer.echo(f"{target['verdict']:>12}  {target['subset']:<13} {target['name']}: {value}{ci} "
                   f"({target['threshold']}; {target['detail']})")
    typer.echo("\nGAN minus baseline, Dice vs truth (mean [95 % CI] over exams and seeds):")
    for c in outcome.document["comparisons"]:
        d = c["dice_truth"]
        if d["mean"] is not None:
            typer.echo(f"{d['verdict']:>12}  {c['cohort']:<13} {c['protocol']:<10} vs {c['baseline']:<21} "
                       f"{d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] p={d['p']:.3g}")
    typer.echo(f"\nTable:  {outcome.json_path}\nReport: {outcome.report}\nMLflow run: {outcome.run_id}")


# --- new commands go above this line (keep each one a thin wrapper over the package) ---

if __name__ == "__main__":  # pragma: no cover
    app()
