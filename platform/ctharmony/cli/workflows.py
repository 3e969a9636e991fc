"""``ctharmony demo`` and ``ctharmony benchmark``: whole workflows with a quiet terminal and a full log."""

from __future__ import annotations

from typing import Annotated

import typer

from ctharmony.cli.common import (
    app,
    preflight,
    quiet_job,
)


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
    harmonizer_set: Annotated[list[str] | None, typer.Option(
        "--harmonizer-set", help="KEY=VALUE for the harmonizer's spec, e.g. train.epochs_stage2=1. Repeatable.")]
    = None,
    segmenter_set: Annotated[list[str] | None, typer.Option(
        "--segmenter-set", help="KEY=VALUE for the segmenter's spec, e.g. train.epochs_stage1=2. Repeatable.")]
    = None,
) -> None:
    """The main job on the embedded default: synthetic archive -> catalog -> training -> `ray job submit` -> report.

    The terminal shows one line per stage and the table; the full log is in OUT/ctharmony.log (-v shows it live).
    """
    from pathlib import Path

    from ctharmony.demo import ARCHIVES, DemoPlan, run_demo

    if archive not in ARCHIVES:
        raise typer.BadParameter(f"--archive must be one of {', '.join(ARCHIVES)}, got {archive!r}")
    plan = DemoPlan(train_patients=train_patients, test_patients=test_patients, size=size, slices=slices, seed=seed,
                    archive=archive, harmonizer_spec=harmonizer_spec,
                    harmonizer_overrides=tuple(harmonizer_set or ()), segmenter_overrides=tuple(segmenter_set or ()))

    def check() -> None:
        from ctharmony.cli.preflight import check_spec

        check_spec(plan.harmonizer_spec, list(plan.harmonizer_overrides))
        check_spec(plan.segmenter_spec, list(plan.segmenter_overrides))

    preflight(check)
    with quiet_job(out, "demo") as console:
        outcome = run_demo(Path(out), plan)
        console.say("\n" + outcome.headline)
        console.say(f"\nReport:  {outcome.report}")
        console.say(f"Results: {outcome.results}")
        console.say(f"Models:  harmonizer {outcome.harmonizer_uri}; segmenter {outcome.segmenter_uri}")
        console.say(f"Total:   {sum(outcome.seconds.values()):.0f} s")
        console.say("Compare runs in the MLflow UI:  ctharmony ui --port 5000  ->  http://127.0.0.1:5000")


@app.command()
def benchmark(
    out: Annotated[str, typer.Option(help="Folder for the simulated archives, models' outputs and the report.")]
    = "benchmark-out",
    real_series: Annotated[str | None, typer.Option(help="A real CT series folder (DICOM): the real-anatomy "
                                                             "cohort is re-simulated from it.")] = None,
    real_mask: Annotated[str | None, typer.Option(help="The real series' liver mask (NIfTI).")] = None,
    train_patients: Annotated[int, typer.Option(help="Simulated phantom patients for training.")] = 16,
    train_augment: Annotated[bool, typer.Option(help="Scan the training patients at drawn doses.")] = True,
    test_patients: Annotated[int, typer.Option(help="Synthetic test patients (training sites).")] = 4,
    real_patients: Annotated[int, typer.Option(help="Augmented copies of the real anatomy.")] = 3,
    unseen_patients: Annotated[int, typer.Option(help="Patients at the unseen site.")] = 3,
    size: Annotated[int, typer.Option(help="Image matrix (pixels).")] = 128,
    slices: Annotated[int, typer.Option(help="Slices per series.")] = 16,
    seed: Annotated[int, typer.Option(help="Simulation seed.")] = 11,
    harmonizer_set: Annotated[list[str] | None, typer.Option(
        "--harmonizer-set", help="KEY=VALUE for the harmonizer's spec (cpu-texture), e.g. loss.texture=0 "
        "train.epochs_stage2=2 for cpu-small, the paper's recipe. Repeatable.")] = None,
) -> None:
    """Where the GAN beats a linear map: train on simulated sites, test synthetic / real anatomy / an unseen site."""
    from pathlib import Path

    from ctharmony.benchmark import BenchmarkPlan, run_benchmark

    if (real_series is None) != (real_mask is None):
        raise typer.BadParameter("give both --real-series and --real-mask, or neither")
    for path in (real_series, real_mask):
        if path is not None and not Path(path).exists():
            raise typer.BadParameter(f"{path} does not exist")
    plan = BenchmarkPlan(
        train_patients=train_patients, test_patients=test_patients, real_patients=real_patients,
        unseen_patients=unseen_patients, size=size, slices=slices, seed=seed, train_augment=train_augment,
        harmonizer_overrides=tuple(harmonizer_set or ()),
        real_series=Path(real_series).resolve() if real_series else None,
        real_mask=Path(real_mask).resolve() if real_mask else None,
    )
    outcome = run_benchmark(Path(out), plan)
    verdict = {True: "met", False: "NOT MET", None: "not measured"}
    for target in outcome.document["targets"]:
        value = "-" if target["value"] is None else f"{target['value']:.4g}"
        typer.echo(f"{verdict[target['met']]:>12}  {target['subset']:<13} {target['name']}: {value} "
                   f"({target['threshold']}; {target['detail']})")
    typer.echo(f"\nTable:  {outcome.json_path}\nReport: {outcome.report}\nMLflow run: {outcome.run_id}")
