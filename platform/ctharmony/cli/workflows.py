"""``ctharmony demo`` and ``ctharmony benchmark``: whole workflows with a quiet terminal and a full log."""

from __future__ import annotations

from collections.abc import Callable
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
    resume: Annotated[bool, typer.Option(help="Take the stages OUT/stages.json records as finished (same options) "
                                              "instead of running them again.")] = False,
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
        outcome = run_demo(Path(out), plan, resume=resume)
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
    real_training: Annotated[bool, typer.Option(help="Also the real-anatomy recipe: per seed a segmenter and a "
        "harmonizer trained on phantom + re-simulated real anatomy, one per real case left out (needs >= 2 real "
        "cases; per seed 1 + (real cases + 1) trainings of each).")] = False,
    resume: Annotated[bool, typer.Option(help="Take the stages OUT/stages.json records as finished (same options) "
                                              "instead of running them again.")] = False,
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
        real_training=real_training,
    )
    try:
        plan.check()
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    with quiet_job(out, "benchmark"):
        outcome = run_benchmark(Path(out), plan, resume=resume)
    for target in outcome.document["targets"]:
        value = "-" if target["value"] is None else f"{target['value']:.4g}"
        ci = "" if target.get("ci_low") is None else f" [{target['ci_low']:.4g}, {target['ci_high']:.4g}]"
        typer.echo(f"{target['verdict']:>12}  {target['subset']:<13} {target['name']}: {value}{ci} "
                   f"({target['threshold']}; {target['detail']})")
    typer.echo("\nGAN minus baseline, Dice vs truth (mean [95 % CI] over exams and seeds):")
    echo_differences(outcome.document["comparisons"], lambda c: f"vs {c['baseline']:<21} ", 12)
    if outcome.document.get("recipe_comparisons"):
        typer.echo("\nReal-anatomy training minus phantom-only, harmonized Dice vs truth:")
        echo_differences(outcome.document["recipe_comparisons"], lambda c: "", 19)
    typer.echo(f"\nTable:  {outcome.json_path}\nReport: {outcome.report}\nMLflow run: {outcome.run_id}")


def echo_differences(rows: list[dict], what: Callable[[dict], str], verdict_width: int) -> None:
    """One line per paired difference (``dice_truth``) of ``rows``: verdict, cohort, protocol, ``what(row)``
    (e.g. the baseline), mean [CI] and p; rows without a figure are left out."""
    for c in rows:
        d = c["dice_truth"]
        if d["mean"] is not None:
            typer.echo(f"{d['verdict']:>{verdict_width}}  {c['cohort']:<13} {c['protocol']:<10} {what(c)}"
                       f"{d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] p={d['p']:.3g}")
