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
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ctharmony.stages import timed_stage

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


def _stage(name: str, seconds: dict[str, float], fn: Callable[[], Any]) -> Any:
    return timed_stage(name, seconds, fn, log)


# The demo's archive is a synthetic phantom with no real patient: its pseudonym salt is pinned (unless
# $CTHARMONY_PSEUDONYM_SALT says otherwise) so that patient keys, hence the train/validation split by
# patient and the report's table, are the same on every machine. Real archives use the data home's
# random salt (ctharmony.archive.pseudonym). The value is the one earlier versions used by default, so the
# demo's table is the one README shows.
DEMO_SALT = "ctharmony-default-salt-v1"


def run_demo(out: Path, plan: DemoPlan | None = None) -> DemoOutcome:
    """Run every stage of the main job under ``out`` and return where the results are."""
    from ctharmony.archive.pseudonym import SALT_ENV

    pinned = SALT_ENV not in os.environ
    if pinned:
        os.environ[SALT_ENV] = DEMO_SALT  # inherited by the Ray workers and the job's local head
    try:
        return _run_demo(out, plan)
    finally:
        if pinned:
            os.environ.pop(SALT_ENV, None)


def _run_demo(out: Path, plan: DemoPlan | None) -> DemoOutcome:
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

    plan = plan or DemoPlan()
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    train_dir, test_dir = out / "archive-train", out / "archive-test"

    def archives() -> None:
        if plan.archive == "phantom":
            common = dict(slices=plan.slices, size=plan.size, sites=plan.sites)
            generate_archive(train_dir, patients=plan.train_patients, seed=plan.seed, **common)
            generate_archive(test_dir, patients=plan.test_patients, seed=plan.seed + 1000, preview=True, **common)
            return
        sites = SIMULATED_SITES[: plan.sites]
        common = dict(slices=plan.slices, size=plan.size, sites=sites, series=PAPER_PROTOCOLS)
        simulate_archive(train_dir, patients=plan.train_patients, seed=plan.seed, augment=True, **common)
        simulate_archive(test_dir, patients=plan.test_patients, seed=plan.seed + 1000, **common)

    _stage(plan.archive, seconds, archives)
    cluster.connect()

    def catalogs() -> None:
        build_catalog(train_dir / "dicom", train_dir / "catalog.parquet", progress=False)
        build_catalog(test_dir / "dicom", test_dir / "catalog.parquet", progress=False)

    _stage("catalog", seconds, catalogs)
    segmenter = _stage(
        "segmenter",
        seconds,
        lambda: train_segmenter(
            train_dir / "catalog.parquet", train_dir / "masks", plan.segmenter_spec,
            overrides=list(plan.segmenter_overrides),
        ),
    )
    harmonizer = _stage(
        "harmonizer",
        seconds,
        lambda: train(
            plan.harmonizer_spec, train_dir / "catalog.parquet", workers=plan.workers,
            name=f"demo-{int(time.time())}",
            overrides=[f"train.segmenter={segmenter.model_uri}", *plan.harmonizer_overrides],
        ),
    )
    baselines = _stage("baselines (fit)", seconds,
                       lambda: fit_and_save_baselines(train_dir / "catalog.parquet", out / "baselines"))
    cluster.shutdown()  # the conversion runs on its own head, through `ray job submit`
    converted = out / "converted"
    job_args = [
        "--catalog", str(test_dir / "catalog.parquet"), "--harmonizer", harmonizer.model_uri,
        "--segmenter", segmenter.model_uri, "--out", str(converted),
    ]
    code = _stage("convert (ray job submit)", seconds, lambda: run_job_on_local_head(job_args, num_cpus=2))
    if code != 0:
        raise RuntimeError(f"the conversion job failed (exit code {code}); its log is above")
    results = converted / "results.parquet"

    def convert_baselines() -> list[Path]:
        cluster.connect()
        paths = []
        for name, path in baselines.items():
            target = out / f"converted-{name}"
            convert_archive(test_dir / "catalog.parquet", str(path), segmenter.model_uri, target)
            paths.append(target / "results.parquet")
        return paths

    baseline_results = _stage("baselines (convert)", seconds, convert_baselines)
    evaluation = _stage(
        "evaluate",
        seconds,
        lambda: evaluate([results, *baseline_results], out / "report", truth=test_dir / "masks",
                         truth_images=(test_dir / "truth") if plan.archive == "simulated" else None,
                         catalog=test_dir / "catalog.parquet"),
    )
    return DemoOutcome(
        out=out, segmenter_uri=segmenter.model_uri, harmonizer_uri=harmonizer.model_uri, results=results,
        report=Path(evaluation.files.html), headline=evaluation.headline, seconds=seconds,
    )
