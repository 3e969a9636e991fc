"""The ``ctharmony`` command line: one Typer app.

Heavy libraries (Ray, torch, MLflow, pydicom) are imported inside the commands so that ``--help``
answers instantly. Every command here works end to end; nothing is exposed before it does.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

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
    typer.Option("--set", help="Override a spec value: key=value (repeatable), e.g. --set train.epochs=3."),
]


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


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="Port to serve on (0: a free one).")] = 0,
    host: Annotated[str, typer.Option(help="Interface to bind; loopback unless you mean otherwise.")] = "127.0.0.1",
) -> None:
    """Start the MLflow UI on the tracking store in force (runs until interrupted)."""
    from ctharmony import tracking
    from ctharmony.net import free_port

    uri = tracking.configure()
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
    experiment: Annotated[str, typer.Option(help="MLflow experiment to log the run in.")] = "ctharmony-evaluate",
    catalog: Annotated[str | None, typer.Option(help="Catalog for the original images of the example "
                                                "slices (default: catalog.parquet beside the results).")] = None,
    mlflow: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="Log the evaluation to MLflow.")] = True,
) -> None:
    """Cohort report: Dice, volume difference, CCC (95% CI), Bland-Altman, paired t-test per protocol and method."""
    from ctharmony.evaluate.cohort import ResultsError
    from ctharmony.evaluate.metrics import MaskFileError
    from ctharmony.evaluate.run import evaluate as run_evaluation

    try:
        done = run_evaluation(results, out, reference_protocol=reference_protocol, truth=truth,
                              experiment=experiment if mlflow else None, catalog=catalog)
    except (ResultsError, MaskFileError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    typer.echo(done.headline)
    typer.echo(f"\nReport: {done.files.html}  (Markdown: {done.files.markdown})")
    if done.run_id:
        typer.echo(f"MLflow run {done.run_id} in experiment {experiment!r}: `ctharmony ui` to browse it.")


@app.command()
def convert(
    catalog: CatalogOption,
    harmonizer: Annotated[str, typer.Option(help="Harmonizer: models:/name@alias, runs:/..., or a local path.")],
    segmenter: Annotated[str, typer.Option(help="Liver segmenter: models:/name@alias, runs:/..., or a path.")],
    out: Annotated[str, typer.Option("--out", help="Output folder (resumable: reruns convert what is missing).")],
    address: AddressOption = None,
    batch_slices: Annotated[int, typer.Option(help="Slices per forward pass.")] = 8,
    tile: Annotated[int | None, typer.Option(help="Tile slices larger than this many pixels a side.")] = None,
    threads: Annotated[int | None, typer.Option(help="Torch threads per actor (CPU).")] = None,
    limit: Annotated[int | None, typer.Option(help="Convert at most this many pending series.")] = None,
) -> None:
    """Harmonize and segment every ok series of a catalog (Ray Data actor pools; DICOM + DICOM SEG out)."""
    from ctharmony.infer.pipeline import ConvertOptions, convert_archive

    options = ConvertOptions(batch_slices=batch_slices, tile=tile, threads=threads, limit=limit)
    results = convert_archive(catalog, harmonizer, segmenter, out, address=address, options=options)
    failed = int((results["status"] != "done").sum()) if len(results) else 0
    typer.echo(f"{len(results) - failed} series done, {failed} failed -> {out}/results.parquet")


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
) -> None:
    """Generate the physics-based dual-energy CT phantom archive (FBP, IR, M40, M60, M80, OPT)."""
    from pathlib import Path

    from ctharmony.phantom import generate_archive

    root = Path(out)
    table = generate_archive(root, patients=patients, slices=slices, size=size, sites=sites, seed=seed,
                             preview=preview, workers=workers)
    typer.echo(f"wrote {len(table)} studies x 6 series to {root / 'dicom'}; table {root / 'phantom.parquet'}")
    if preview:
        typer.echo(f"preview: {root / 'preview.png'}")


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
    df = build_catalog(Path(archive), Path(out), address, rules=rules, chunk_size=chunk_size)
    typer.echo(summarize(df))
    typer.echo(f"catalog: {out} ({len(df)} rows, {df.attrs['files']} files, {df.attrs['seconds']:.1f} s)")


@app.command("train-segmenter")
def train_segmenter(
    catalog: CatalogOption,
    masks: Annotated[str, typer.Option("--masks", help="Folder of liver masks <StudyInstanceUID>.nii.gz.")],
    spec: Annotated[str, typer.Option("--spec", help="Segmenter spec: name or YAML path.")] = "models/liver-unet.yaml",
    overrides: OverrideOption = None,
    register: Annotated[bool, typer.Option("--register/--no-register", help="Register ctharmony-liver-unet.")] = True,
) -> None:
    """Train the reference liver U-Net on M80 series only; log and register it in MLflow."""
    from pathlib import Path

    from ctharmony.train.segmenter import train_segmenter as run

    outcome = run(Path(catalog), Path(masks), spec, overrides=overrides or [], register=register)
    typer.echo(f"liver U-Net: validation Dice {outcome.metrics['val/dice']:.3f}; model {outcome.model_uri}"
               + (f" (ctharmony-liver-unet version {outcome.model.version})" if register else ""))


@app.command("train")
def train_harmonizer(
    catalog: CatalogOption,
    spec: HarmonizerSpecOption = "models/cpu-small.yaml",
    workers: Annotated[int, typer.Option(help="Ray Train DDP workers.")] = 2,
    segmenter: Annotated[str | None, typer.Option(help="Reference segmenter for Dice and perceptual "
                                                     "features: models:/ctharmony-liver-unet/1, a path...")] = None,
    overrides: OverrideOption = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the newest run of this spec.")] = False,
    name: Annotated[str | None, typer.Option(help="Run name under the storage path (default: spec+time).")] = None,
    storage: Annotated[str | None, typer.Option(help="Checkpoint storage (default: <home>/ray_results).")] = None,
    gpu: Annotated[bool, typer.Option("--gpu/--no-gpu", help="One GPU per worker (default: if present).")] = False,
    address: AddressOption = None,
    register: Annotated[bool, typer.Option("--register/--no-register", help="Register ctharmony-harmonizer.")] = True,
) -> None:
    """Train the harmonizer GAN (stage 1 L1, stage 2 L1 + perceptual + GAN) with Ray Train DDP."""
    from pathlib import Path

    from ctharmony import cluster
    from ctharmony.train.launch import train

    info = cluster.connect(address)
    sets = list(overrides or []) + ([f"train.segmenter={segmenter}"] if segmenter else [])
    outcome = train(spec, Path(catalog), workers=workers, use_gpu=gpu or info.gpus >= workers,
                    storage_path=storage, name=name, resume=resume, register=register, overrides=sets)
    last = outcome.metrics
    for key in sorted(k for k in last if k.startswith("val/mae_hu/")):
        protocol = key.rsplit("/", 1)[1]
        dice = last.get(f"val/dice/{protocol}")
        typer.echo(f"  {protocol:<4} MAE {last[key]:7.1f} HU (raw {last[f'val/mae_hu_raw/{protocol}']:7.1f})"
                   + (f"  Dice {dice:.3f}" if dice is not None else ""))
    typer.echo(f"harmonizer: {outcome.model_uri} (MLflow run {outcome.run_id}"
               + (f", ctharmony-harmonizer version {outcome.registered_version})" if register else ")"))


@app.command("sweep")
def sweep(
    catalog: CatalogOption,
    spec: HarmonizerSpecOption = "models/cpu-small.yaml",
    trials: Annotated[int, typer.Option(help="Trials to sample (per grid point of the space).")] = 8,
    workers_per_trial: Annotated[int, typer.Option(help="Ray Train DDP workers of each trial.")] = 2,
    space: Annotated[str | None, typer.Option(help="Search space YAML (default: models/sweep.yaml).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted sweep (--name, "
                                         "default the latest); finished trials are kept.")] = False,
    name: Annotated[str | None, typer.Option(help="Sweep name (default: sweep-<spec>-<time>).")] = None,
    segmenter: Annotated[str | None, typer.Option(help="Reference segmenter whose Dice is the objective: "
                                                  "models:/ctharmony-liver-unet/1, a path...")] = None,
    overrides: OverrideOption = None,
    gpu: Annotated[bool | None, typer.Option("--gpu/--no-gpu", help="GPU workers (default: if enough).")] = None,
    cpus_per_worker: Annotated[float | None, typer.Option(help="CPUs per worker (default: sized to fit).")] = None,
    max_concurrent: Annotated[int | None, typer.Option(help="Cap on trials at a time.")] = None,
    storage: Annotated[str | None, typer.Option(help="Sweep storage (default: <home>/sweeps).")] = None,
    address: AddressOption = None,
) -> None:
    """Sweep the loss weights λ1, λ2, λ3 with Ray Tune; select by worst-protocol liver Dice; MLflow runs."""
    from pathlib import Path

    from ctharmony.train.sweep_training import sweep_lambdas

    report = sweep_lambdas(spec, Path(catalog), trials=trials, workers_per_trial=workers_per_trial, space=space,
                           resume=resume, name=name, segmenter=segmenter, overrides=overrides or [],
                           use_gpu=gpu, cpus_per_worker=cpus_per_worker, max_concurrent=max_concurrent,
                           storage_path=storage, address=address)  # fmt: skip
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
    train_patients: Annotated[int, typer.Option(help="Phantom patients for training.")] = 8,
    test_patients: Annotated[int, typer.Option(help="Phantom patients for the test cohort.")] = 6,
    size: Annotated[int, typer.Option(help="Image matrix (pixels).")] = 96,
    slices: Annotated[int, typer.Option(help="Slices per series.")] = 24,
    seed: Annotated[int, typer.Option(help="Phantom seed.")] = 7,
) -> None:
    """The main job on the embedded default: phantom -> catalog -> training -> `ray job submit` -> report."""
    from pathlib import Path

    from ctharmony.demo import DemoPlan, run_demo

    plan = DemoPlan(train_patients=train_patients, test_patients=test_patients, size=size, slices=slices, seed=seed)
    outcome = run_demo(Path(out), plan)
    typer.echo("\n" + outcome.headline)
    typer.echo(f"\nReport:  {outcome.report}")
    typer.echo(f"Results: {outcome.results}")
    typer.echo(f"Models:  harmonizer {outcome.harmonizer_uri}; segmenter {outcome.segmenter_uri}")
    typer.echo("Timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in outcome.seconds.items()))
    typer.echo("Compare runs in the MLflow UI:  ctharmony ui --port 5000  ->  http://127.0.0.1:5000")


# --- new commands go above this line (keep each one a thin wrapper over the package) ---

if __name__ == "__main__":  # pragma: no cover
    app()
