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

With ``plan.real_training`` the real-anatomy recipe joins (:meth:`BenchmarkPlan.trainings` declares it): a
training archive re-simulating every real case (``archive-train-real/``, stage ``real-anatomy training
archive``), and per seed, beside the phantom-only pair, one segmenter + harmonizer pair on all real cases
(converting the synthetic and unseen-site archives) and one per real case left out (converting that case's
test archive only); its exams are reported as the cohorts ``"<cohort> · real-anatomy training"``, compared
with the phantom-only recipe exam by exam (:mod:`.recipe`).

Example::

    run_benchmark(Path("benchmark-out"), BenchmarkPlan(train_patients=4, test_patients=2, seeds=(0,)))
"""

from __future__ import annotations

import dataclasses
import json
import logging
import operator
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ctharmony.benchmark.design import PHANTOM_ONLY, REAL, SYNTHETIC, UNSEEN, BenchmarkPlan, Subset, Training
from ctharmony.benchmark.pooled import Pooled, exams_frame
from ctharmony.benchmark.table import check_targets, subset_table
from ctharmony.benchmark.verdicts import comparisons
from ctharmony.stages import JOURNAL, Stage, run_stages

log = logging.getLogger("ctharmony.benchmark")


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


@dataclasses.dataclass(frozen=True)
class Arm:
    """A method the test archives are converted with, per training seed: its name in the tables, the folder
    its conversion goes to, and which finished stage holds its model (``model(values, seed, training)``)."""

    method: str
    folder: str
    model: Callable[..., str]


def _baseline(name: str) -> Callable[..., str]:
    return lambda done, seed, training=PHANTOM_ONLY: done["baselines (fit)"][name]


# The methods compared, in the tables' order. A new arm (e.g. a harmonizer trained another way) is one more
# entry here, plus the stage that trains its model in :func:`seed_stages`. Each training recipe
# (:meth:`BenchmarkPlan.trainings`) converts its test archives with every arm, with its own segmenter.
ARMS = (
    Arm("harmonized", "converted-gan",
        lambda done, seed, training=PHANTOM_ONLY: done[training.stage("harmonizer", seed)]),
    Arm("histogram", "converted-histogram", _baseline("histogram")),
    Arm("linear", "converted-linear", _baseline("linear")),
)


def run_benchmark(out: Path, plan: BenchmarkPlan | None = None, *, resume: bool = False) -> BenchmarkOutcome:
    """Run every stage under ``out``; write ``benchmark.json`` and ``benchmark.md``; log them to MLflow.

    ``resume``: take the stages ``out/stages.json`` records as finished (same plan) instead of running them
    again (:func:`ctharmony.stages.run_stages`).
    """
    from ctharmony import cluster
    from ctharmony.salt import pinned_salt

    plan = (plan or BenchmarkPlan()).check()
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with pinned_salt(plan.salt):  # synthetic archives: the same patient keys, hence splits, in every data home
        try:
            run = run_stages(benchmark_stages(out, plan), log, journal=out / JOURNAL, resume=resume,
                             fingerprint=_plan_json(plan))
        finally:
            cluster.shutdown()
        tables, radiomics = run.values["evaluate"]
        models = {seed: seed_models(run.values, seed, plan.trainings()) for seed in plan.seeds}
        return write_outcome(out, plan, plan.reported(), tables, models, run.seconds, radiomics)


def seed_models(done: Mapping[str, Any], seed: int, trainings: list[Training] | None = None) -> dict[str, str]:
    """The models of one training seed: its segmenter, then each arm's model; then each further training
    recipe's segmenter and harmonizer (``"segmenter (<label>)"``, ``"harmonized (<label>)"``)."""
    out = {"segmenter": done[f"segmenter (seed {seed})"], **{arm.method: arm.model(done, seed) for arm in ARMS}}
    for training in (trainings or [])[1:]:
        out[f"segmenter ({training.label})"] = done[training.stage("segmenter", seed)]
        out[f"harmonized ({training.label})"] = done[training.stage("harmonizer", seed)]
    return out


REAL_ARCHIVE = "real-anatomy training archive"  # the stage simulating and cataloguing archive-train-real/


def benchmark_stages(out: Path, plan: BenchmarkPlan) -> list[Stage]:
    """The benchmark as stages: simulate, catalog, baselines, then per seed its models and conversions,
    evaluate. Every stage but the evaluation is resumable."""
    from ctharmony import cluster
    from ctharmony.archive.catalog import build_catalog
    from ctharmony.baselines import fit_and_save_baselines

    subsets = plan.subsets()
    trainings = plan.trainings()
    train_dir = out / "archive-train"
    real_dir = out / "archive-train-real"
    test_dirs = {s.name: out / f"archive-{s.name}" for s in subsets}
    train_catalog = train_dir / "catalog.parquet"

    def simulate(_: Mapping[str, Any]) -> dict[str, list[str]]:
        simulate_subset(train_dir, plan.training(), plan, plan.train_series)
        return {s.name: sorted(set(simulate_subset(test_dirs[s.name], s, plan, plan.test_series)["study_uid"]))
                for s in subsets}

    def catalogs(_: Mapping[str, Any]) -> str:
        cluster.connect()
        for folder in (train_dir, *test_dirs.values()):
            build_catalog(folder / "dicom", folder / "catalog.parquet", progress=False)
        return str(join_catalogs([d / "catalog.parquet" for d in test_dirs.values()], out / "test-catalog.parquet"))

    def simulate_real_training(_: Mapping[str, Any]) -> dict[str, str]:
        from ctharmony.simulate import simulate_archive
        from ctharmony.simulate.real_cases import origins

        table = simulate_archive(real_dir, patients=plan.real_patients, slices=plan.slices, size=plan.size,
                                 sites=plan.train_sites, seed=plan.real_training_seed(), series=plan.train_series,
                                 anatomy="real", real_cases=plan.real_cases)
        cluster.connect()
        build_catalog(real_dir / "dicom", real_dir / "catalog.parquet", progress=False)
        return origins(table)  # study UID -> real case

    def evaluate(done: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
        cluster.shutdown()  # the evaluation needs no cluster: its memory goes back to the machine
        results = {seed: {t.label: {arm.method: Path(done[t.stage("convert", seed, arm.method)]) for arm in ARMS}
                          for t in trainings} for seed in plan.seeds}
        studies = {name: set(uids) for name, uids in done["simulate"].items()}
        return evaluate_seeds(out, plan, subsets, test_dirs, studies, results, Path(done["catalog"]), trainings)

    stages = [
        Stage("simulate", simulate, lambda studies: f"{sum(map(len, studies.values()))} test studies",
              resumable=True),
        Stage("catalog", catalogs, resumable=True),
    ]
    if plan.real_training:
        stages.append(Stage(REAL_ARCHIVE, simulate_real_training,
                            lambda cases: f"{len(cases)} studies of {len(set(cases.values()))} real cases",
                            resumable=True))
    stages.append(Stage("baselines (fit)", lambda _: fit_and_save_baselines(train_catalog, out / "baselines"),
                        lambda fitted: ", ".join(fitted), keep=lambda fitted: {k: str(v) for k, v in fitted.items()},
                        resumable=True))
    for seed in plan.seeds:
        stages += seed_stages(out / f"seed-{seed}", seed, plan, train_catalog, trainings)
    return [*stages, Stage("evaluate", evaluate)]


def seed_stages(folder: Path, seed: int, plan: BenchmarkPlan, train_catalog: Path,
                trainings: list[Training] | None = None) -> list[Stage]:
    """One training seed: per training recipe (:meth:`BenchmarkPlan.trainings`; default: phantom-only) its
    segmenter and harmonizer, then its test archives converted by every arm with its segmenter."""
    from ctharmony import cluster
    from ctharmony.infer.pipeline import convert_archive
    from ctharmony.train.launch import train
    from ctharmony.train.segmenter import train_segmenter

    seeded = f"train.seed={seed}"
    out = folder.parent
    real_dir = out / "archive-train-real"

    def fit_segmenter(training: Training) -> Callable[[Mapping[str, Any]], Any]:
        def fit(_: Mapping[str, Any]) -> Any:
            cluster.connect()
            mix = {"data": segmenter_mix(plan, real_dir, training.cases)} if training.cases else {}
            return train_segmenter(train_catalog, train_catalog.parent / "masks", plan.segmenter_spec,
                                   overrides=[*plan.segmenter_overrides, seeded], register=False,
                                   experiment=plan.experiment, **mix)
        return fit

    def fit_harmonizer(training: Training) -> Callable[[Mapping[str, Any]], Any]:
        def fit(done: Mapping[str, Any]) -> Any:
            cluster.connect()
            catalog, name = train_catalog, f"benchmark-{int(time.time())}-seed{seed}"
            if training.cases:
                catalog = harmonizer_catalog(train_catalog, real_dir / "catalog.parquet", done[REAL_ARCHIVE],
                                             training.cases, out / "training-catalogs" / f"{training.folder}.parquet")
                name = f"benchmark-{int(time.time())}-{training.folder}-seed{seed}"
            return train(plan.harmonizer_spec, catalog, workers=plan.workers, name=name,
                         overrides=[f"train.segmenter={done[training.stage('segmenter', seed)]}",
                                    *plan.harmonizer_overrides, seeded],
                         register=False, experiment=plan.experiment)
        return fit

    def converter(training: Training, arm: Arm) -> Callable[[Mapping[str, Any]], str]:
        def convert(done: Mapping[str, Any]) -> str:
            cluster.connect()
            catalog = Path(done["catalog"])
            if training.archives is not None:  # only its own test archives
                catalog = catalog_of_studies(catalog, {u for a in training.archives for u in done["simulate"][a]},
                                             out / "test-catalogs" / f"{training.folder}.parquet")
            target = folder / training.folder / arm.folder
            convert_archive(catalog, arm.model(done, seed, training), done[training.stage("segmenter", seed)],
                            target)
            return str(target / "results.parquet")
        return convert

    model_uri = operator.attrgetter("model_uri")
    stages = []
    for training in trainings or [PHANTOM_ONLY]:
        stages += [
            Stage(training.stage("segmenter", seed), fit_segmenter(training), keep=model_uri, resumable=True),
            Stage(training.stage("harmonizer", seed), fit_harmonizer(training), keep=model_uri, resumable=True),
            *(Stage(training.stage("convert", seed, arm.method), converter(training, arm), resumable=True)
              for arm in ARMS),
        ]
    return stages


def segmenter_mix(plan: BenchmarkPlan, real_dir: Path, cases: tuple[str, ...]) -> Any:
    """The segmenter's mix beside the phantom archive: the re-simulated real archive without the cases not in
    ``cases`` (a held-out patient), and the original images of ``cases``."""
    from ctharmony.train.segmenter_data import ArchiveSource, OriginalCase, SegmenterData

    names = plan.case_names()
    left_out = tuple(c for c in names if c not in cases)
    originals = tuple(OriginalCase(Path(s), Path(m)) for (s, m), c in zip(plan.real_cases, names, strict=True)
                      if c in cases)
    return SegmenterData(archives=(ArchiveSource(real_dir / "catalog.parquet", real_dir / "masks", left_out),),
                         originals=originals, size=plan.size, site=plan.train_sites[0], slices=plan.slices)


def catalog_of_studies(catalog: Path, studies: set[str], out: Path) -> Path:
    """The rows of ``catalog`` whose study is in ``studies``, written to ``out``."""
    from ctharmony.archive.catalog import read_catalog, write_catalog

    frame = read_catalog(catalog).frame
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_catalog(frame[frame["study_uid"].isin(studies)].reset_index(drop=True), out)


def harmonizer_catalog(phantom: Path, real: Path, origins: Mapping[str, str], cases: tuple[str, ...],
                       out: Path) -> Path:
    """The harmonizer's training catalog: the phantom training catalog joined with the re-simulated real
    archive's rows of ``cases`` (``origins``: study UID -> real case, from ``phantom.parquet``)."""
    kept = {study for study, case in origins.items() if case in cases}
    part = catalog_of_studies(real, kept, out.with_name(out.stem + "-real.parquet"))
    return join_catalogs([phantom, part], out)


def evaluate_seeds(out: Path, plan: BenchmarkPlan, subsets: list[Subset], test_dirs: dict[str, Path],
                   studies: dict[str, set[str]], results: dict[int, dict[str, dict[str, Path]]], test_catalog: Path,
                   trainings: list[Training] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-exam tables of every seed, training recipe and archive (``seed``, ``cohort``, ``cluster`` added), and
    the radiomics reproducibility of each seed, archive, protocol and method; the first seed also writes each
    archive's cohort report under ``reports/``. ``results``: seed -> training label -> method -> results file."""
    from ctharmony.archive.protocols import REFERENCE_PROTOCOL
    from ctharmony.evaluate.cohort import build_cohort
    from ctharmony.evaluate.report import write_report
    from ctharmony.evaluate.run import image_loader

    tables, shares = [], []
    for i, seed in enumerate(plan.seeds):
        for training in trainings or [PHANTOM_ONLY]:
            covered = [s for s in subsets if training.converts(s)]
            per_method = {method: split_results(path, {s.name: studies[s.name] for s in covered})
                          for method, path in results[seed][training.label].items()}
            for subset in (dataclasses.replace(s, recipe=training.recipe) for s in covered):
                folder = test_dirs[subset.name]
                cohort = build_cohort([per_method[m][subset.name] for m in per_method], REFERENCE_PROTOCOL,
                                      truth=folder / "masks", truth_images=folder / "truth", catalog=test_catalog)
                if i == 0:
                    write_report(cohort, out / "reports" / subset.report_name,
                                 images=image_loader(cohort, test_catalog))
                exams = cohort.exams.assign(seed=seed, cohort=subset.cohort_name,
                                            exam=subset.name + "/" + cohort.exams["exam"])
                tables.append(exams.assign(cluster=subset.name if subset.clustered else exams["exam"]))
                shares.append(radiomics_shares(cohort.summary).assign(seed=seed, archive=subset.name,
                                                                      cohort=subset.cohort_name))
    return exams_frame(tables), pd.concat(shares, ignore_index=True)


RECIPE_NOTE = ("; converted by the real-anatomy recipe's models (trained on phantom and re-simulated real "
               "anatomy; each real case by the models trained without it, the other cohorts by those trained on all)")
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
    from ctharmony.benchmark.publish import log_benchmark, write_benchmark_report
    from ctharmony.benchmark.recipe import recipe_comparisons, recipe_targets
    from ctharmony.evaluate.cohort import summarize

    pooled = Pooled(exams, plan.bootstrap_replicates, plan.bootstrap_seed, plan.confidence)
    targets = check_targets(pooled, REFERENCE_PROTOCOL, real=REAL, unseen=UNSEEN, synthetic=SYNTHETIC,
                            protocol=plan.verdict_protocol)
    recipes: dict[str, Any] = {}
    if plan.real_training:  # the real-anatomy recipe against phantom-only, and its targets
        recipes["recipe_comparisons"] = recipe_comparisons(pooled)
        targets += recipe_targets(pooled, recipes["recipe_comparisons"], REFERENCE_PROTOCOL, REAL,
                                  (SYNTHETIC, UNSEEN), plan.verdict_protocol)
    cohorts: dict[str, dict[str, Any]] = {}
    for subset in subsets:
        entry = cohorts.setdefault(subset.cohort_name, {
            "description": subset.description + (RECIPE_NOTE if subset.recipe else ""), "sites": list(subset.sites),
            "anatomy": subset.anatomy, "archives": [], "reports": []} | ({"recipe": subset.recipe} if subset.recipe
                                                                       else {}))
        entry["archives"].append(subset.name)
        entry["reports"].append(f"reports/{subset.report_name}")
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
        **recipes,
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

    document = {k: plain(v) for k, v in dataclasses.asdict(plan).items()}
    if not plan.real_training:  # the plan as it was before the real-anatomy recipe existed (same journals)
        del document["real_training"]
    return document
