"""The main job end to end on the embedded default: what ``make demo`` runs.

Stages, each a real component (nothing is faked or skipped):

1. archives: two synthetic multi-site, six-protocol archives — training and test patients apart — of
   the image-domain phantom (:mod:`ctharmony.phantom`) or, with ``archive="simulated"``, simulated in
   the projection domain (:mod:`ctharmony.simulate`: scanner physics, noise, kernels, iterative
   reconstruction, dual energy; training patients at drawn doses);
2. catalog: header-only Ray Data scan of both archives;
3. segmenter: the reference liver U-Net trained on M80 only (MLflow: ``ctharmony-liver-unet``);
4. harmonizer: two-stage GAN training with Ray Train DDP (MLflow: ``ctharmony-harmonizer``);
5. convert: ``ray job submit`` of ``jobs/convert_archive.py`` to a local head on 127.0.0.1; the two
   baselines (histogram matching, linear HU recalibration) through the same conversion pipeline;
6. evaluate: cohort report (Dice, volumes, CCC, Bland-Altman; on simulated archives also noise, NPS,
   edge width and MAE / SSIM against the noise-free T80) to Markdown/HTML and MLflow.

Example:
    $ ctharmony demo --out demo-out
"""

from __future__ import annotations

import dataclasses
import logging
import operator
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ctharmony.stages import JOURNAL, Stage, run_stages

log = logging.getLogger("ctharmony.demo")
ARCHIVES = ("phantom", "simulated")
SIMULATED_SITES = ("siemens-force", "ge-revolution", "canon-aquilion")  # the first ``sites`` of them


@dataclasses.dataclass
class DemoPlan:
    """Sizes of the demo; the defaults fit a 2-core laptop in about ten minutes."""

    archive: str = "phantom"  # "phantom" (image domain) or "simulated" (scanner physics; see README)
    train_patients: int = 8
    test_patients: int = 6
    slices: int = 24
    size: int = 96
    sites: int = 2
    seed: int = 7
    workers: int = 2
    harmonizer_spec: str = "cpu-small"  # cpu-texture for a simulated archive (its noise texture matters)
    segmenter_spec: str = "liver-unet"
    harmonizer_overrides: tuple[str, ...] = ()
    segmenter_overrides: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.archive not in ARCHIVES:
            raise ValueError(f"demo: archive must be one of {', '.join(ARCHIVES)}, got {self.archive!r}")
        if self.archive == "simulated" and not 1 <= self.sites <= len(SIMULATED_SITES):
            raise ValueError(f"demo: a simulated archive has 1 to {len(SIMULATED_SITES)} sites, got {self.sites}")


@dataclasses.dataclass
class DemoOutcome:
    """Where the demo put everything."""

    out: Path
    segmenter_uri: str
    harmonizer_uri: str
    results: Path
    report: Path
    headline: str
    seconds: dict[str, float]


# The demo's archive is a synthetic phantom with no real patient: its pseudonym salt is pinned (unless
# $CTHARMONY_PSEUDONYM_SALT says otherwise) so that patient keys, hence the train/validation split by
# patient and the report's table, are the same on every machine. Real archives use the data home's
# random salt (ctharmony.archive.pseudonym). The value is the one earlier versions used by default, so the
# demo's table is the one README shows.
DEMO_SALT = "ctharmony-default-salt-v1"


def run_demo(out: Path, plan: DemoPlan | None = None, *, resume: bool = False) -> DemoOutcome:
    """Run every stage of the main job under ``out`` and return where the results are.

    ``resume``: take the stages ``out/stages.json`` records as finished (same plan) instead of running them
    again (:func:`ctharmony.stages.run_stages`).
    """
    from ctharmony.salt import SALT_ENV, pinned_salt

    if SALT_ENV in os.environ:  # the user's salt wins
        return _run_demo(out, plan, resume)
    with pinned_salt(DEMO_SALT):  # inherited by the Ray workers and the job's local head
        return _run_demo(out, plan, resume)


def _run_demo(out: Path, plan: DemoPlan | None, resume: bool) -> DemoOutcome:
    from ctharmony import cluster

    plan = plan or DemoPlan()
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    try:
        run = run_stages(demo_stages(out, plan), log, journal=out / JOURNAL, resume=resume,
                         fingerprint=dataclasses.asdict(plan))
    finally:
        cluster.shutdown()
    values = run.values
    evaluation = values["evaluate"]
    if evaluation.run_id:  # the stages' seconds beside the figures in the MLflow UI
        from ctharmony.tracking import log_stage_seconds

        log_stage_seconds(evaluation.run_id, run.seconds)
    return DemoOutcome(
        out=out, segmenter_uri=values["segmenter"], harmonizer_uri=values["harmonizer"],
        results=Path(values["convert (ray job submit)"]), report=Path(evaluation.files.html),
        headline=evaluation.headline, seconds=run.seconds,
    )


def demo_stages(out: Path, plan: DemoPlan) -> list[Stage]:
    """The demo as stages: archives, catalog, segmenter, harmonizer, baselines, conversions, evaluation."""
    from ctharmony import cluster
    from ctharmony.archive.catalog import build_catalog
    from ctharmony.archive.protocols import PAPER_PROTOCOLS
    from ctharmony.baselines import fit_and_save_baselines
    from ctharmony.evaluate.run import evaluate
    from ctharmony.infer.local_head import run_job_on_local_head
    from ctharmony.infer.pipeline import convert_archive
    from ctharmony.phantom import generate_archive
    from ctharmony.simulate import simulate_archive
    from ctharmony.train.launch import train
    from ctharmony.train.segmenter import train_segmenter

    train_dir, test_dir = out / "archive-train", out / "archive-test"
    train_catalog, test_catalog = train_dir / "catalog.parquet", test_dir / "catalog.parquet"

    def archives(_: Mapping[str, Any]) -> int:
        if plan.archive == "phantom":
            common = dict(slices=plan.slices, size=plan.size, sites=plan.sites)
            generate_archive(train_dir, patients=plan.train_patients, seed=plan.seed, **common)
            generate_archive(test_dir, patients=plan.test_patients, seed=plan.seed + 1000, preview=True, **common)
        else:
            sites = SIMULATED_SITES[: plan.sites]
            common = dict(slices=plan.slices, size=plan.size, sites=sites, series=PAPER_PROTOCOLS)
            simulate_archive(train_dir, patients=plan.train_patients, seed=plan.seed, augment=True, **common)
            simulate_archive(test_dir, patients=plan.test_patients, seed=plan.seed + 1000, **common)
        return plan.train_patients + plan.test_patients

    def catalogs(_: Mapping[str, Any]) -> int:
        cluster.connect()
        frames = [build_catalog(folder / "dicom", folder / "catalog.parquet", progress=False)
                  for folder in (train_dir, test_dir)]
        return sum(int((frame["status"] == "ok").sum()) for frame in frames)

    def fit_segmenter(_: Mapping[str, Any]) -> Any:
        cluster.connect()
        return train_segmenter(train_catalog, train_dir / "masks", plan.segmenter_spec,
                               overrides=list(plan.segmenter_overrides))

    def fit_harmonizer(done: Mapping[str, Any]) -> Any:
        cluster.connect()
        return train(plan.harmonizer_spec, train_catalog, workers=plan.workers, name=f"demo-{int(time.time())}",
                     overrides=[f"train.segmenter={done['segmenter']}", *plan.harmonizer_overrides])

    def convert(done: Mapping[str, Any]) -> str:
        cluster.shutdown()  # the conversion runs on its own head, through `ray job submit`
        converted = out / "converted"
        job_args = ["--catalog", str(test_catalog), "--harmonizer", done["harmonizer"],
                    "--segmenter", done["segmenter"], "--out", str(converted)]
        code = run_job_on_local_head(job_args, num_cpus=2)
        if code != 0:
            raise RuntimeError(f"the conversion job failed (exit code {code}); see its log")
        return str(converted / "results.parquet")

    def convert_baselines(done: Mapping[str, Any]) -> list[str]:
        cluster.connect()
        paths = []
        for name, path in done["baselines (fit)"].items():
            target = out / f"converted-{name}"
            convert_archive(test_catalog, path, done["segmenter"], target)
            paths.append(str(target / "results.parquet"))
        return paths

    def evaluate_all(done: Mapping[str, Any]) -> Any:
        cluster.shutdown()  # the evaluation needs no cluster
        return evaluate(
            [Path(done["convert (ray job submit)"]), *map(Path, done["baselines (convert)"])], out / "report",
            truth=test_dir / "masks", truth_images=(test_dir / "truth") if plan.archive == "simulated" else None,
            catalog=test_catalog)

    model_uri = operator.attrgetter("model_uri")

    return [
        Stage(plan.archive, archives, lambda n: f"{n} patients x 6 protocols", resumable=True),
        Stage("catalog", catalogs, lambda n: f"{n} series", resumable=True),
        Stage("segmenter", fit_segmenter, lambda s: f"validation Dice {s.metrics.get('val/dice', float('nan')):.3f}",
              keep=model_uri, resumable=True),
        Stage("harmonizer", fit_harmonizer, _harmonizer_summary, keep=model_uri, resumable=True),
        Stage("baselines (fit)", lambda _: fit_and_save_baselines(train_catalog, out / "baselines"),
              lambda fitted: ", ".join(fitted), keep=lambda fitted: {k: str(v) for k, v in fitted.items()},
              resumable=True),
        Stage("convert (ray job submit)", convert, _results_summary, resumable=True),
        Stage("baselines (convert)", convert_baselines, lambda paths: f"{len(paths)} baselines", resumable=True),
        Stage("evaluate", evaluate_all, lambda ev: f"report {ev.files.html}"),
    ]


def _harmonizer_summary(outcome: Any) -> str:
    metrics = outcome.metrics
    shown = [f"{key.removeprefix('val/')} {metrics[key]:.3g}" for key in ("val/dice_worst", "val/mae_hu")
             if isinstance(metrics.get(key), (int, float))]
    return f"{len(outcome.history)} epochs" + (", validation " + ", ".join(shown) if shown else "")


def _results_summary(results: str) -> str:
    import pandas as pd

    table = pd.read_parquet(results)
    done = table[table["status"] == "done"]
    return f"{len(done)}/{len(table)} series converted, {int(done['slices'].sum())} slices"
