"""The benchmark's Markdown report and its MLflow run (built from the ``benchmark.json`` document).

Figures are pooled over exams and training seeds (mean [95 % CI]); verdicts are three-way (met / not met /
undecided) from the CIs.

Example::

    path = write_benchmark_report(document, Path("benchmark-out/benchmark.md"))
    run_id = log_benchmark(document, [Path("benchmark-out/benchmark.json"), path], "ctharmony-benchmark")
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ctharmony.evaluate.cohort import order_methods, order_protocols
from ctharmony.tracking.store import metric_key

COLUMNS = (  # (metric, header, decimals): figures pooled over exams and seeds, mean [95 % CI]
    ("dice_truth", "Dice vs truth", 3), ("dice", "Dice vs ref", 3), ("abs_volume_pct", "abs vol diff %", 2),
    ("mae_t80_hu", "MAE to T80 HU", 1), ("noise_sd_hu", "noise SD HU", 1),
)
HOW = (
    "**Dice vs truth** (the primary measure) is against the simulation's true liver mask; **Dice vs ref** "
    "against the exam's original reference-protocol mask (the paper's measure, which inherits the reference "
    "segmenter's own errors). Noise SD: in the uniform liver (true mask eroded, vessels left out); MAE: "
    "against the noise-free 80 keV truth image (T80). Every figure is the mean over the cohort's exams and "
    "the training seeds, with its 95 % CI from a two-level bootstrap (exams resampled by patient: the "
    "augmented copies of one real case form one cluster; seeds resampled independently); `sd exam` / "
    "`sd seed` are the spreads between exams (seed-averaged) and between seeds (exam-averaged)."
)


def _num(value: Any, decimals: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{float(value):.{decimals}f}"


def ci_text(figure: dict[str, Any] | None, decimals: int = 3, signed: bool = False) -> str:
    """``mean [low, high]`` of a pooled figure (``–`` when not measured)."""
    if not figure or figure.get("mean") is None:
        return "–"
    sign = "+" if signed and figure["mean"] > 0 else ""
    return (f"{sign}{_num(figure['mean'], decimals)} [{_num(figure['ci_low'], decimals)}, "
            f"{_num(figure['ci_high'], decimals)}]")


def subset_markdown(name: str, subset: dict[str, Any]) -> list[str]:
    """One cohort's table: a row per protocol and method, mean [95 % CI] of each figure."""
    table = subset["table"]
    lines = [f"## {name}: {subset['description']}", "",
             f"{subset['exams']} exams of {subset['patients']} patients; sites {', '.join(subset['sites'])}; anatomy "
             f"{subset['anatomy']}; cohort reports (first seed) in {', '.join(f'`{r}/`' for r in subset['reports'])}.",
             "", "| protocol | method | " + " | ".join(h for _, h, _ in COLUMNS) + " | Dice vs truth sd exam / seed |",
             "|---|---|" + "---:|" * (len(COLUMNS) + 1)]
    for protocol in order_protocols(list(table)):
        for method in order_methods(list(table[protocol])):
            values = table[protocol][method]
            truth = values.get("dice_truth") or {}
            lines.append(f"| {protocol} | {method} | " + " | ".join(ci_text(values.get(m), d) for m, _, d in COLUMNS)
                         + f" | {_num(truth.get('sd_exam'), 3)} / {_num(truth.get('sd_seed'), 3)} |")
    return [*lines, ""]


VERDICT_WORD = {"met": "met", "not met": "**not met**", "undecided": "undecided", "not measured": "not measured"}


def targets_markdown(targets: Sequence[dict[str, Any]]) -> list[str]:
    """The issue's targets: mean [95 % CI], threshold, three-way verdict."""
    lines = ["## Targets", "", "A target is met when its 95 % CI clears the threshold, not met when the CI lies on "
             "the other side, undecided otherwise.", "",
             "| target | cohort | value [95 % CI] | threshold | verdict | detail |", "|---|---|---:|---|---|---|"]
    for t in targets:
        value = ci_text({"mean": t["value"], "ci_low": t.get("ci_low"), "ci_high": t.get("ci_high")}, 4)
        lines.append(f"| {t['name']} | {t['subset']} | {value} | {t['threshold']} | {VERDICT_WORD[t['verdict']]} "
                     f"| {t['detail']} |")
    return [*lines, ""]


def comparisons_markdown(comparisons: Sequence[dict[str, Any]]) -> list[str]:
    """GAN minus each baseline per cohort and protocol: paired differences with CI, p and verdict."""
    lines = ["## GAN vs each baseline", "",
             "GAN minus baseline, paired by exam and seed: mean [95 % CI] (p). Verdict on Dice vs truth: GAN better "
             "/ worse when the CI excludes 0, else undecided; MAE: lower is better.", "",
             "| cohort | protocol | baseline | Δ Dice vs truth | verdict | Δ Dice vs ref | Δ MAE to T80 HU "
             "| MAE verdict |",
             "|---|---|---|---:|---|---:|---:|---|"]
    for c in comparisons:
        truth, ref, mae = c["dice_truth"], c["dice"], c["mae_t80_hu"]
        p = "" if truth.get("p") is None else f" (p {truth['p']:.3g})"
        lines.append(f"| {c['cohort']} | {c['protocol']} | {c['baseline']} | {ci_text(truth, 3, True)}{p} | "
                     f"{truth['verdict']} | {ci_text(ref, 3, True)} | {ci_text(mae, 1, True)} | {mae['verdict']} |")
    return [*lines, ""]


def recipe_markdown(comparisons: Sequence[dict[str, Any]]) -> list[str]:
    """The real-anatomy recipe minus the phantom-only recipe per cohort and protocol (harmonized Dice vs truth)."""
    if not comparisons:
        return []
    lines = ["## Real-anatomy training minus phantom-only training", "",
             "Harmonized Dice vs truth of the real-anatomy recipe (each real case converted and segmented by the "
             "models trained without it; synthetic and unseen site by those trained on every real case) minus the "
             "phantom-only recipe's, paired by exam and seed: mean [95 % CI] (p); better / worse when the CI "
             "excludes 0.", "", "| cohort | protocol | Δ Dice vs truth | verdict |", "|---|---|---:|---|"]
    for c in comparisons:
        d = c["dice_truth"]
        p = "" if d.get("p") is None else f" (p {d['p']:.3g})"
        lines.append(f"| {c['cohort']} | {c['protocol']} | {ci_text(d, 3, True)}{p} | {d['verdict']} |")
    return [*lines, ""]


HEADLINE_PROTOCOLS = (("M40", "M40"), ("IR", "IR"), ("unknown", "sharp kernel"))
HEADLINE_METHODS = ("original", "harmonized", "histogram-matching", "linear-recalibration")


def headline_markdown(document: dict[str, Any]) -> list[str]:
    """The short table README quotes: Dice vs truth per cohort on M40, IR and the unseen sharp kernel, and GAN
    minus each baseline (paired, 95 % CI) with its verdict."""
    lines = ["## Headline", "",
             "Liver Dice against the truth (mean over exams and seeds), and GAN minus each baseline, paired by exam "
             "and seed, mean [95 % CI] and verdict.", "",
             "| cohort, protocol | original | GAN | histogram | linear | GAN − histogram | GAN − linear |",
             "|---|---:|---:|---:|---:|---|---|"]
    differences = {(c["cohort"], c["protocol"], c["baseline"]): c["dice_truth"] for c in document["comparisons"]}
    for cohort, subset in document["subsets"].items():
        for protocol, label in HEADLINE_PROTOCOLS:
            methods = subset["table"].get(protocol)
            if not methods:
                continue
            means = [_num((methods.get(m, {}).get("dice_truth") or {}).get("mean"), 3) for m in HEADLINE_METHODS]
            gaps = []
            for baseline in HEADLINE_METHODS[2:]:
                d = differences.get((cohort, protocol, baseline))
                gaps.append("–" if not d or d.get("mean") is None else f"{ci_text(d, 3, True)} {d['verdict']}")
            lines.append(f"| {cohort}, {label} | " + " | ".join(means) + " | " + " | ".join(gaps) + " |")
    return [*lines, ""]


def radiomics_markdown(radiomics: dict[str, Any]) -> list[str]:
    """Share of the 82 IBSI liver features reproducible (Lin's CCC >= 0.85) per cohort, protocol and method."""
    if not radiomics:
        return []
    lines = ["## Radiomics reproducibility", "",
             "Share of the 82 IBSI liver features (25 HU bins, the same voxels in every series) whose Lin's CCC "
             "across a cohort's exams is >= 0.85, against the original reference protocol and against the "
             "noise-free T80; mean over seeds [range over seeds].", "",
             "| cohort | protocol | method | vs reference | vs T80 |", "|---|---|---|---:|---:|"]
    for cohort, protocols in radiomics.items():
        for protocol in order_protocols(list(protocols)):
            for method in order_methods(list(protocols[protocol])):
                figures = protocols[protocol][method]
                cells = []
                for column in ("radiomics_reproducible", "radiomics_reproducible_truth"):
                    f = figures.get(column)
                    cells.append("–" if f is None else f"{f['mean']:.2f} [{f['min']:.2f}, {f['max']:.2f}]")
                lines.append(f"| {cohort} | {protocol} | {method} | {cells[0]} | {cells[1]} |")
    return [*lines, ""]


REAL_TRAINING = (
    "Beside that phantom-only recipe, the real-anatomy recipe (`--real-training`) trains per seed one more "
    "segmenter and harmonizer on the phantom archive plus every real case re-simulated at the training sites "
    "(and the cases' original images, for the segmenter), used for the synthetic and unseen-site cohorts, and "
    "one pair per real case on all cases but that one, used for that case's test archive only: no real test "
    "patient is ever in its own models' training. Its exams are the cohorts `<cohort> · real-anatomy training`.")


def write_benchmark_report(document: dict[str, Any], path: Path) -> Path:
    """Write ``benchmark.md``: targets, GAN-vs-baseline comparisons, each cohort's table, models, timings."""
    plan = document["plan"]
    lines = ["# ctharmony benchmark", "",
             f"Trained on {plan['train_patients']} simulated phantom patients at {', '.join(plan['train_sites'])} "
             f"({plan['size']}x{plan['size']}, {plan['slices']} slices), once per training seed "
             f"({', '.join(map(str, plan['seeds']))}: one segmenter and one harmonizer each); reference protocol "
             f"{document['reference_protocol']}. Methods: original (no conversion), harmonized (the GAN), "
             "histogram-matching and linear-recalibration baselines, all through the same conversion pipeline.",
             *([REAL_TRAINING] if plan.get("real_training") else []),
             "", HOW, "", *headline_markdown(document), *targets_markdown(document["targets"]),
             *comparisons_markdown(document["comparisons"]),
             *recipe_markdown(document.get("recipe_comparisons", ()))]
    for name, subset in document["subsets"].items():
        lines += subset_markdown(name, subset)
    lines += radiomics_markdown(document.get("radiomics", {}))
    for name, reason in document.get("skipped", {}).items():
        lines += [f"## {name}: skipped", "", reason, ""]
    lines += ["## Models", ""] + [f"- seed {seed}, {k}: `{v}`" for seed, models in document["models"].items()
                                  for k, v in models.items()] + [""]
    lines += ["## Stage timings", ""] + [f"- {k}: {v:.0f} s" for k, v in document["seconds"].items()]
    lines.append(f"- total: {sum(document['seconds'].values()):.0f} s")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def benchmark_metrics(document: dict[str, Any]) -> dict[str, float]:
    """``<cohort>/<metric>/<protocol>/<method>[/ci_low|/ci_high]`` of every pooled figure,
    ``gan-minus/<cohort>/<protocol>/<baseline>/<metric>[...]`` of every comparison, ``target/<i>/met`` (1 / 0),
    ``stage_seconds/<stage>``."""
    out: dict[str, float] = {}

    def put(parts: tuple[str, ...], figure: dict[str, Any]) -> None:
        for field, suffix in (("mean", ()), ("ci_low", ("ci_low",)), ("ci_high", ("ci_high",))):
            value = figure.get(field)
            if value is not None and math.isfinite(float(value)):
                out[metric_key(*parts, *suffix)] = float(value)

    for name, subset in document["subsets"].items():
        for protocol, methods in subset["table"].items():
            for method, figures in methods.items():
                for metric, figure in figures.items():
                    put((name, metric, protocol, method), figure)
    for c in document["comparisons"]:
        for metric in ("dice_truth", "dice", "mae_t80_hu"):
            put(("gan-minus", c["cohort"], c["protocol"], c["baseline"], metric), c[metric])
    for c in document.get("recipe_comparisons", ()):
        put(("recipe-minus", c["cohort"], c["protocol"], c["method"], "dice_truth"), c["dice_truth"])
    for cohort, protocols in document.get("radiomics", {}).items():
        for protocol, methods in protocols.items():
            for method, figures in methods.items():
                for metric, figure in figures.items():
                    out[metric_key(cohort, metric, protocol, method)] = float(figure["mean"])
    for i, target in enumerate(document["targets"]):
        if target["met"] is not None:
            out[metric_key("target", f"{i:02d}", "met")] = float(target["met"])
    for stage, seconds in document["seconds"].items():
        out[metric_key("stage_seconds", stage)] = float(seconds)
    out["seconds/total"] = float(sum(document["seconds"].values()))
    return out


def log_benchmark(document: dict[str, Any], files: Sequence[Path], experiment: str) -> str:
    """One MLflow run: the plan as params, every figure as a metric, the JSON and report as artifacts."""
    import mlflow

    from ctharmony import tracking

    with tracking.start_run(experiment, run_name="benchmark", tags={"ctharmony.stage": "benchmark"}) as run:
        mlflow.log_params({k: str(v)[:250] for k, v in document["plan"].items()})
        metrics = benchmark_metrics(document)
        names = list(metrics)
        for start in range(0, len(names), 500):
            mlflow.log_metrics({k: metrics[k] for k in names[start:start + 500]})
        for path in files:
            mlflow.log_artifact(str(path))
        return run.info.run_id
