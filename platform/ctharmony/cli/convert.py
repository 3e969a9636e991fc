"""``ctharmony convert``: an archive through the harmonizer and the segmenter on Ray Data."""

from __future__ import annotations

from typing import Annotated

import typer

from ctharmony.cli.common import (
    AddressOption,
    AutoscalingConfigOption,
    GpuOption,
    GpusHintOption,
    app,
    preflight,
)


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
    precision: Annotated[str, typer.Option(help="auto (GPU: bf16 where supported, else fp16; CPU: bf16 where "
                                           "the CPU has native bf16, else fp32), bf16, fp16 or fp32.")] = "auto",
    original_mask: Annotated[bool, typer.Option("--original-mask/--no-original-mask", help="Also segment the "
                                                "original series (--no-original-mask: the harmonized series' "
                                                "mask only, half the segmenter's work).")] = True,
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
                             reference_passthrough=not harmonize_reference, segment_original=original_mask,
                             **({"gpus_per_actor": share} if share is not None else {}))  # fmt: skip
    if plan:
        from ctharmony.infer.conversion_plan import plan_for_cluster

        try:
            typer.echo(plan_for_cluster(options, address).to_json())
        except ValueError as err:
            raise typer.BadParameter(str(err)) from err
        return
    missing = [f"--{n}" for n, v in (("catalog", catalog), ("harmonizer", harmonizer), ("out", out)) if not v]
    if missing:
        raise typer.BadParameter(f"missing {', '.join(missing)} (only --plan runs without them)")

    def check() -> tuple[str, str]:
        from ctharmony.cli.preflight import (
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

    harmonizer, segmenter = preflight(check)
    try:
        results = convert_archive(catalog, harmonizer, segmenter, out, address=address, options=options)
    except OutputBusyError as err:  # another run writes OUT: say who, exit without a traceback
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    counts = results["status"].value_counts()
    summary = ", ".join(f"{int(counts.get(status, 0))} {status}" for status in ("done", "failed", "skipped", "pending"))
    typer.echo(f"{len(results)} series: {summary} -> {out}/results.parquet")
