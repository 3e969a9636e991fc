"""The benchmark end to end: simulate -> catalog -> per training seed: train, convert -> evaluate -> pool.

Stages (each a real component, as in ``make demo``), under the plan's pinned pseudonym salt:

1. simulate: the training archive (phantom anatomy at the training sites) and one archive per test
   cohort (:meth:`BenchmarkPlan.subsets`; real anatomy: one per real case), projection-domain
   (:mod:`ctharmony.simulate`), with the noise-free truth images and true masks;
2. catalog: each archive's header-only catalog; the test archives' catalogs are joined into one;
3. baselines fitted once (their voxel sample has a fixed seed); then per training seed the segmenter (M80 only)
   and the harmonizer (two-stage GAN, Ray Train DDP) with ``train.seed`` = the seed, all on the
   training archive only: nothing is tuned on a test cohort;
4. convert: per seed, the joined test catalog once per method (GAN, histogram matching, linear
   recalibration) with that seed's segmenter, through :func:`ctharmony.infer.pipeline.convert_archive`;
5. evaluate: per seed and archive, the per-exam table (Dice against the true mask and the original
   reference mask, volumes, image quality against T80); the first seed also writes each archive's cohort
   report; then figures pooled over exams and seeds with 95 % CIs (:mod:`.pooled`), GAN-vs-baseline
   comparisons and targets with three-way verdicts (:mod:`.verdicts`, :mod:`.table`), ``benchmark.json``,
   ``benchmark.md`` and one MLflow run with both files.

Example::

    run_benchmark(Path("benchmark-out"), BenchmarkPlan(train_patients=4, test_patients=2, seeds=(0,)))
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
from ctharmony.benchmark.pooled import Pooled, exams_frame
from ctharmony.benchmark.table import check_targets, subset_table
from ctharmony.benchmark.verdicts import comparisons
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
    if subset.real_case is not None:
        extra = {"anatomy": "real", "real_series": subset.real_case[0], "real_mask": subset.real_case[1]}
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
    from ctharmony.salt import pinned_salt

    plan = plan or BenchmarkPlan()
    if not plan.seeds:
        raise ValueError("the benchmark needs at least one training seed")
    with pinned_salt(plan.salt):  # synthetic archives: the same patient keys, hence splits, in every data home
        return _run(Path(out).resolve(), plan)


def _run(out: Path, plan: BenchmarkPlan) -> BenchmarkOutcome:
    from ctharmony import cluster
    from ctharmony.archive.catalog import build_catalog
    from ctharmony.baselines import fit_and_save_baselines

    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    subsets = plan.subsets()
    train_dir = out / "archive-train"
    test_dirs = {s.name: out / f"archive-{s.name}" for s in subsets}

    def simulate() -> dict[str, set[str]]:
        simulate_subset(train_dir, plan.training(), plan, plan.train_series)
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
        baselines = timed_stage("baselines (fit)", seconds,
                                lambda: fit_and_save_baselines(train_catalog, out / "baselines"), log)
        models: dict[int, dict[str, str]] = {}
        results: dict[int, dict[str, Path]] = {}
        for seed in plan.seeds:
            models[seed], results[seed] = train_and_convert(out / f"seed-{seed}", seed, plan, train_catalog,
                                                            test_catalog, baselines, seconds)
    finally:
        cluster.shutdown()

    tables, radiomics = timed_stage("evaluate", seconds, lambda: evaluate_seeds(
        out, plan, subsets, test_dirs, studies, results, test_catalog), log)
    return write_outcome(out, plan, subsets, tables, models, seconds, radiomics)


def train_and_convert(folder: Path, seed: int, plan: BenchmarkPlan, train_catalog: Path, test_catalog: Path,
                      baselines: dict[str, Path], seconds: dict[str, float]) -> tuple[dict[str, str], dict[str, Path]]:
    """One training seed: its segmenter and harmonizer, then the test catalog converted by every method."""
    from ctharmony.infer.pipeline import convert_archive
    from ctharmony.train.launch import train
    from ctharmony.train.segmenter import train_segmenter

    seeded = f"train.seed={seed}"
    segmenter = timed_stage(f"segmenter (seed {seed})", seconds, lambda: train_segmenter(
        train_catalog, train_catalog.parent / "masks", plan.segmenter_spec,
        overrides=[*plan.segmenter_overrides, seeded], register=False, experiment=plan.experiment), log)
    harmonizer = timed_stage(f"harmonizer (seed {seed})", seconds, lambda: train(
        plan.harmonizer_spec, train_catalog, workers=plan.workers, name=f"benchmark-{int(time.time())}-seed{seed}",
        overrides=[f"train.segmenter={segmenter.model_uri}", *plan.harmonizer_overrides, seeded], register=False,
        experiment=plan.experiment), log)
    models = {"segmenter": segmenter.model_uri, "harmonized": harmonizer.model_uri,
              **{k: str(v) for k, v in baselines.items()}}
    results = {}
    for method, model in models.items():
        if method == "segmenter":
            continue
        target = folder / METHOD_FILES[method]
        timed_stage(f"convert ({method}, seed {seed})", seconds,
                    lambda model=model, target=target: convert_archive(test_catalog, model, segmenter.model_uri,
                                                                       target), log)
        results[method] = target / "results.parquet"
    return models, results


def evaluate_seeds(out: Path, plan: BenchmarkPlan, subsets: list[Subset], test_dirs: dict[str, Path],
                   studies: dict[str, set[str]], results: dict[int, dict[str, Path]], test_catalog: Path
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-exam tables of every seed and archive (``seed``, ``cohort``, ``cluster`` added), and the radiomics
    reproducibility of each seed, archive, protocol and method; the first seed also writes each archive's
    cohort report under ``reports/``."""
    from ctharmony.archive.protocols import REFERENCE_PROTOCOL
    from ctharmony.evaluate.cohort import build_cohort
    from ctharmony.evaluate.report import write_report
    from ctharmony.evaluate.run import image_loader

    tables, shares = [], []
    for i, seed in enumerate(plan.seeds):
        per_method = {method: split_results(path, studies) for method, path in results[seed].items()}
        for subset in subsets:
            folder = test_dirs[subset.name]
            cohort = build_cohort([per_method[m][subset.name] for m in per_method], REFERENCE_PROTOCOL,
                                  truth=folder / "masks", truth_images=folder / "truth", catalog=test_catalog)
            if i == 0:
                write_report(cohort, out / "reports" / subset.name, images=image_loader(cohort, test_catalog))
            exams = cohort.exams.assign(seed=seed, cohort=subset.cohort_name,
                                        exam=subset.name + "/" + cohort.exams["exam"])
            tables.append(exams.assign(cluster=subset.name if subset.clustered else exams["exam"]))
            shares.append(radiomics_shares(cohort.summary).assign(seed=seed, archive=subset.name,
                                                                  cohort=subset.cohort_name))
    return exams_frame(tables), pd.concat(shares, ignore_index=True)


RADIOMICS_COLUMNS = ("radiomics_reproducible", "radiomics_reproducible_truth")


def radiomics_shares(summary: pd.DataFrame) -> pd.DataFrame:
    """A cohort summary's share of reproducible radiomic features per protocol and method (NaN when absent)."""
    frame = summary[["protocol", "method"]].copy()
    for column in RADIOMICS_COLUMNS:
        frame[column] = summary[column] if column in summary else float("nan")
    return frame


def radiomics_document(shares: pd.DataFrame) -> dict[str, Any]:
    """``{cohort: {protocol: {method: {metric: {mean, min, max}}}}}``: each archive's share of reproducible
    features (a cohort-level figure: Lin's CCC across its exams), averaged over archives and seeds, with the
    range over seeds."""
    out: dict[str, Any] = {}
    for (cohort, protocol, method), rows in shares.groupby(["cohort", "protocol", "method"], sort=True):
        per_seed = rows.groupby("seed")[list(RADIOMICS_COLUMNS)].mean()
        figures = {}
        for column in RADIOMICS_COLUMNS:
            values = per_seed[column].dropna()
            if len(values):
                figures[column] = {"mean": round(float(values.mean()), 4), "min": round(float(values.min()), 4),
                                   "max": round(float(values.max()), 4)}
        if figures:
            out.setdefault(cohort, {}).setdefault(protocol, {})[method] = figures
    return out


def write_outcome(out: Path, plan: BenchmarkPlan, subsets: list[Subset], exams: pd.DataFrame,
                  models: dict[int, dict[str, str]], seconds: dict[str, float],
                  radiomics: pd.DataFrame | None = None) -> BenchmarkOutcome:
    """Pool, decide, and write ``benchmark.json``, ``benchmark.md`` and ``exams.parquet``; log the MLflow run."""
    from ctharmony.archive.protocols import REFERENCE_PROTOCOL
    from ctharmony.benchmark.report import log_benchmark, write_benchmark_report
    from ctharmony.evaluate.cohort import summarize

    pooled = Pooled(exams, plan.bootstrap_replicates, plan.bootstrap_seed, plan.confidence)
    targets = check_targets(pooled, REFERENCE_PROTOCOL, real=REAL, unseen=UNSEEN, synthetic=SYNTHETIC,
                            protocol=plan.verdict_protocol)
    cohorts: dict[str, dict[str, Any]] = {}
    for subset in subsets:
        entry = cohorts.setdefault(subset.cohort_name, {
            "description": subset.description, "sites": list(subset.sites), "anatomy": subset.anatomy,
            "archives": [], "reports": []})
        entry["archives"].append(subset.name)
        entry["reports"].append(f"reports/{subset.name}")
    for name, entry in cohorts.items():
        rows = exams[exams["cohort"] == name]
        entry |= {"exams": int(rows["exam"].nunique()), "patients": int(rows["cluster"].nunique()),
                  "table": pooled.table(name)}
    per_seed = {str(seed): {name: subset_table(summarize(exams[(exams["seed"] == seed) & (exams["cohort"] == name)]
                                                         .drop(columns=["cohort", "cluster", "seed"])))
                            for name in cohorts} for seed in plan.seeds}
    document = {
        "plan": _plan_json(plan),
        "reference_protocol": REFERENCE_PROTOCOL,
        "models": {str(seed): m for seed, m in models.items()},
        "subsets": cohorts,
        "comparisons": comparisons(pooled, REFERENCE_PROTOCOL),
        "targets": [dataclasses.asdict(t) | {"met": t.met} for t in targets],
        "per_seed": per_seed,
        "radiomics": radiomics_document(radiomics) if radiomics is not None and len(radiomics) else {},
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }
    if not plan.real_cases:
        document["skipped"] = {REAL: "no real CT case given (--real-series and --real-mask)"}
    exams.to_parquet(out / "exams.parquet", index=False)
    json_path = out / "benchmark.json"
    json_path.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    report = write_benchmark_report(document, out / "benchmark.md")
    run_id = log_benchmark(document, [json_path, report], plan.experiment)
    return BenchmarkOutcome(out=out, json_path=json_path, report=report, run_id=run_id, document=document)


def _plan_json(plan: BenchmarkPlan) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        return str(value) if isinstance(value, Path) else [plain(v) for v in value] if isinstance(value, tuple) \
            else value

    return {k: plain(v) for k, v in dataclasses.asdict(plan).items()}
