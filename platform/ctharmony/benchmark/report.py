"""The benchmark's Markdown report and its MLflow run (built from the ``benchmark.json`` document).

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
from ctharmony.evaluate.mlflow_log import metric_key

COLUMNS = (  # (metric, header, format)
    ("n", "n", "{:d}"), ("dice", "Dice vs ref", "{:.3f}"), ("dice_truth", "Dice vs truth", "{:.3f}"),
    ("abs_volume_pct", "abs vol diff %", "{:.2f}"), ("noise_sd_hu", "noise SD HU", "{:.1f}"),
    ("noise_sd_ratio_ref", "noise / ref", "{:.2f}"), ("nps_peak_lp_mm", "NPS peak lp/mm", "{:.3f}"),
    ("nps_peak_ratio_ref", "NPS peak / ref", "{:.2f}"), ("edge_width_mm", "edge 10-90 % mm", "{:.2f}"),
    ("mae_t80_hu", "MAE to T80 HU", "{:.1f}"), ("ssim_t80", "SSIM to T80", "{:.3f}"),
    ("radiomics_reproducible", "radiomics repro. vs ref", "{:.2f}"),
    ("radiomics_reproducible_truth", "radiomics repro. vs T80", "{:.2f}"),
)
HOW = (
    "Dice vs ref: against the exam's original reference-protocol mask (the paper's measure); Dice vs truth: "
    "against the simulation's true liver mask. Noise SD: in the uniform liver (true mask eroded, vessels left "
    "out); NPS: radially averaged noise power spectrum; edge: 10-90 % rise across the true liver boundary; "
    "MAE / SSIM: against the noise-free 80 keV truth image (T80). '/ ref' divides by the original reference "
    "protocol's value. Means over the cohort's exams. Radiomics repro.: share of the 82 IBSI liver features "
    "(25 HU bins, same voxels in every series) whose Lin's CCC across exams is >= 0.85, against the original "
    "reference protocol or the noise-free T80 (per-feature CCCs: the cohort report's radiomics_ccc.csv)."
)


def _cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return fmt.format(int(value)) if fmt == "{:d}" else fmt.format(float(value))


def subset_markdown(name: str, subset: dict[str, Any]) -> list[str]:
    """One cohort's table: a row per protocol and method."""
    table = subset["table"]
    lines = [f"## {name}: {subset['description']}", "",
             f"{subset['exams']} exams; sites {', '.join(subset['sites'])}; anatomy {subset['anatomy']}; "
             f"full cohort report in `{subset['report']}/`.", "",
             "| protocol | method | " + " | ".join(h for _, h, _ in COLUMNS) + " |",
             "|---|---|" + "---:|" * len(COLUMNS)]
    for protocol in order_protocols(list(table)):
        for method in order_methods(list(table[protocol])):
            values = table[protocol][method]
            lines.append(f"| {protocol} | {method} | "
                         + " | ".join(_cell(values.get(m), f) for m, _, f in COLUMNS) + " |")
    return [*lines, ""]


def targets_markdown(targets: Sequence[dict[str, Any]]) -> list[str]:
    """The issue's targets: value, threshold, met or not."""
    verdict = {True: "met", False: "**not met**", None: "not measured"}
    lines = ["## Targets", "", "| target | cohort | value | threshold | verdict | detail |",
             "|---|---|---:|---|---|---|"]
    for t in targets:
        value = "–" if t["value"] is None else f"{t['value']:.4g}"
        lines.append(f"| {t['name']} | {t['subset']} | {value} | {t['threshold']} | {verdict[t['met']]} "
                     f"| {t['detail']} |")
    return [*lines, ""]


def write_benchmark_report(document: dict[str, Any], path: Path) -> Path:
    """Write ``benchmark.md``: the targets, then each cohort's table, the models and the stage timings."""
    plan = document["plan"]
    lines = ["# ctharmony benchmark", "",
             f"Trained on {plan['train_patients']} simulated phantom patients at {', '.join(plan['train_sites'])} "
             f"({plan['size']}x{plan['size']}, {plan['slices']} slices); reference protocol "
             f"{document['reference_protocol']}. Methods: original (no conversion), harmonized (the GAN), "
             "histogram-matching and linear-recalibration baselines, all through the same conversion pipeline.",
             "", HOW, "", *targets_markdown(document["targets"])]
    for name, subset in document["subsets"].items():
        lines += subset_markdown(name, subset)
    for name, reason in document.get("skipped", {}).items():
        lines += [f"## {name}: skipped", "", reason, ""]
    lines += ["## Models", ""] + [f"- {k}: `{v}`" for k, v in document["models"].items()] + [""]
    lines += ["## Stage timings", ""] + [f"- {k}: {v:.0f} s" for k, v in document["seconds"].items()]
    lines.append(f"- total: {sum(document['seconds'].values()):.0f} s")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def benchmark_metrics(document: dict[str, Any]) -> dict[str, float]:
    """``<subset>/<metric>/<protocol>/<method>`` for every finite figure, and ``target/<i>/met`` (1 or 0)."""
    out: dict[str, float] = {}
    for name, subset in document["subsets"].items():
        for protocol, methods in subset["table"].items():
            for method, values in methods.items():
                for metric, value in values.items():
                    if value is not None and math.isfinite(float(value)):
                        out[metric_key(name, metric, protocol, method)] = float(value)
    for i, target in enumerate(document["targets"]):
        if target["met"] is not None:
            out[metric_key("target", f"{i:02d}", "met")] = float(target["met"])
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
