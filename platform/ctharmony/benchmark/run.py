"""The benchmark end to end: simulate -> catalog -> train segmenter and harmonizer -> convert -> evaluate.

Stages (each a real component, as in ``make demo``):

1. simulate: the training archive (phantom anatomy at the training sites) and one archive per test
   cohort (:meth:`BenchmarkPlan.subsets`), projection-domain (:mod:`ctharmony.simulate`), with the
   noise-free truth images and true masks;
2. catalog: each archive's header-only catalog; the test cohorts' catalogs are joined into one;
3. segmenter (M80 only) and harmonizer (two-stage GAN, Ray Train DDP), and both baselines fitted, all
   on the training archive only: nothing is tuned on a test cohort;
4. convert: the joined test catalog once per method (GAN, histogram matching, linear recalibration),
   through :func:`ctharmony.infer.pipeline.convert_archive`;
5. evaluate: each cohort on its own (Dice, volumes, image quality against its true masks and T80),
   then ``benchmark.json``, ``benchmark.md`` and one MLflow run with both files.

Example::

    run_benchmark(Path("benchmark-out"), BenchmarkPlan(train_patients=4, test_patients=2))
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd

from ctharmony.benchmark.plan import REAL, SYNTHETIC, UNSEEN, BenchmarkPlan, Subset
from ctharmony.benchmark.table import check_targets, subset_table
from ctharmony.stages import timed_stage

log = logging.getLogger("ctharmony.benchmark")
METHOD_FILES = {"harmonized": "converted-gan", "histogram": "converted-histogram", "linear": "converted-linear"}


@dataclasses.dataclass
class BenchmarkOutcome:
    """Where the benchmark put its table, report and MLflow run."""

    out: Path
    json_path: Path
    report: Path
    run_id: str | None
    document: dict[str, Any]


def simulate_subset(folder: Path, subset: Subset, plan: BenchmarkPlan, series: tuple[str, ...]) -> pd.DataFrame:
    """Simulate one cohort's archive in ``folder`` (DICOM, true masks, truth images, phantom.parquet)."""
    from ctharmony.simulate import simulate_archive

    extra: dict[str, Any] = {}
    if subset.anatomy == "real":
        extra = {"anatomy": "real", "real_series": plan.real_series, "real_mask": plan.real_mask}
    return simulate_archive(folder, patients=subset.patients, slices=plan.slices, size=plan.size,
                            sites=subset.sites, seed=subset.seed, series=series, augment=subset.augment, **extra)


def join_catalogs(paths: list[Path], out: Path) -> Path:
    """One catalog of several archives' catalogs (series keys stay unique: they include the folder)."""
    from ctharmony.archive.catalog import read_catalog, write_catalog

    frame = pd.concat([read_catalog(p).frame for p in paths], ignore_index=True)
    return write_catalog(frame, out)


def split_results(results: Path, studies: dict[str, set[str]]) -> dict[str, Path]:
    """``results.parquet`` split per cohort (by study UID), written beside it as ``results-<cohort>.parquet``."""
    table = pd.read_parquet(results)
    out = {}
    for name, uids in studies.items():
        path = results.with_name(f"results-{name}.parquet")
        table[table["study_uid"].isin(uids)].to_parquet(path, index=False)
        out[name] = path
    return out


def run_benchmark(out: Path, plan: BenchmarkPlan | None = None) -> BenchmarkOutcome:
    """Run every stage under ``out``; write ``benchmark.json`` and ``benchmark.md``; log them to MLflow."""
    from ctharmony import cluster
    from ctharmony.archive.catalog import build_catalog
    from ctharmony.archive.protocols import REFERENCE_PROTOCOL
    from ctharmony.baselines import fit_and_save_baselines
    from ctharmony.evaluate.run import evaluate
    from ctharmony.infer.pipeline import convert_archive
    from ctharmony.train.launch import train
    from ctharmony.train.segmenter import train_segmenter

    plan = plan or BenchmarkPlan()
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    subsets = plan.subsets()
    train_dir = out / "archive-train"
    test_dirs = {s.name: out / f"archive-{s.name}" for s in subsets}
    train_subset = plan.training()

    def simulate() -> dict[str, set[str]]:
        simulate_subset(train_dir, train_subset, plan, plan.train_series)
        return {s.name: set(simulate_subset(test_dirs[s.name], s, plan, plan.test_series)["study_uid"])
                for s in subsets}

    studies = timed_stage("simulate", seconds, simulate, log)
    cluster.connect()
    try:
        def catalogs() -> Path:
            for folder in (train_dir, *test_dirs.values()):
                build_catalog(folder / "dicom", folder / "catalog.parquet", progress=False)
            return join_catalogs([d / "catalog.parquet" for d in test_dirs.values()], out / "test-catalog.parquet")

        test_catalog = timed_stage("catalog", seconds, catalogs, log)
        train_catalog = train_dir / "catalog.parquet"
        segmenter = timed_stage("segmenter", seconds, lambda: train_segmenter(
            train_catalog, train_dir / "masks", plan.segmenter_spec, overrides=list(plan.segmenter_overrides),
            register=False, experiment=plan.experiment), log)
        harmonizer = timed_stage("harmonizer", seconds, lambda: train(
            plan.harmonizer_spec, train_catalog, workers=plan.workers, name=f"benchmark-{int(time.time())}",
            overrides=[f"train.segmenter={segmenter.model_uri}", *plan.harmonizer_overrides], register=False,
            experiment=plan.experiment), log)
        baselines = timed_stage("baselines (fit)", seconds,
                                lambda: fit_and_save_baselines(train_catalog, out / "baselines"), log)
        models = {"harmonized": harmonizer.model_uri, **{k: str(v) for k, v in baselines.items()}}

        results = {}
        for method, model in models.items():
            folder = out / METHOD_FILES[method]
            timed_stage(f"convert ({method})", seconds,
                        lambda model=model, folder=folder: convert_archive(test_catalog, model, segmenter.model_uri,
                                                                           folder), log)
            results[method] = folder / "results.parquet"
    finally:
        cluster.shutdown()
    per_method = {method: split_results(path, studies) for method, path in results.items()}

    def evaluate_all() -> dict[str, Any]:
        evaluations = {}
        for subset in subsets:
            folder = test_dirs[subset.name]
            evaluations[subset.name] = evaluate(
                [per_method[m][subset.name] for m in models], out / "reports" / subset.name,
                reference_protocol=REFERENCE_PROTOCOL, truth=folder / "masks", truth_images=folder / "truth",
                experiment=plan.experiment, catalog=test_catalog)
        return evaluations

    evaluations = timed_stage("evaluate", seconds, evaluate_all, log)
    tables = {name: subset_table(ev.cohort.summary) for name, ev in evaluations.items()}
    targets = check_targets(tables, REFERENCE_PROTOCOL, real=REAL, unseen=UNSEEN, synthetic=SYNTHETIC)
    document = {
        "plan": _plan_json(plan),
        "reference_protocol": REFERENCE_PROTOCOL,
        "models": {"segmenter": segmenter.model_uri, **models},
        "subsets": {s.name: {"description": s.description, "sites": list(s.sites), "anatomy": s.anatomy,
                             "exams": int(evaluations[s.name].cohort.exams["exam"].nunique()),
                             "report": str((out / "reports" / s.name).relative_to(out)),
                             "table": tables[s.name]} for s in subsets},
        "targets": [dataclasses.asdict(t) for t in targets],
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }
    if plan.real_series is None or plan.real_mask is None:
        document["skipped"] = {REAL: "no real CT series given (--real-series and --real-mask)"}
    from ctharmony.benchmark.report import log_benchmark, write_benchmark_report

    json_path = out / "benchmark.json"
    json_path.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    report = write_benchmark_report(document, out / "benchmark.md")
    run_id = log_benchmark(document, [json_path, report], plan.experiment)
    return BenchmarkOutcome(out=out, json_path=json_path, report=report, run_id=run_id, document=document)


def _plan_json(plan: BenchmarkPlan) -> dict[str, Any]:
    values = dataclasses.asdict(plan)
    return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v) for k, v in values.items()}
