"""Log a cohort evaluation to MLflow: metrics per protocol and method, model URIs, the report as artifacts.

Metric names are ``<metric>/<protocol>/<method>``, e.g. ``dice/M40/harmonized``,
``volume_ratio/M40/original``, ``ccc/M40/harmonized``, ``noise_sd_hu/M40/harmonized``,
``noise_sd_ratio_ref/M40/harmonized``, ``mae_t80_hu/M40/harmonized``, ``radiomics_reproducible/M40/harmonized``
(share of features with CCC >= 0.85 against the reference; ``radiomics_reproducible_truth``: against the
noise-free T80; ``_glcm`` etc. per family); per-site ones are prefixed ``site/<site>/``. Per-feature CCCs
are the ``radiomics_ccc.csv`` artifact.
Params carry the models' URIs and counts only: no patient names, IDs or UIDs.

Example::

    run_id = log_evaluation(cohort, files, experiment="ctharmony-evaluate")
"""

from __future__ import annotations

import math

import pandas as pd

from ctharmony import tracking
from ctharmony.evaluate.cohort import Cohort
from ctharmony.evaluate.image_quality import COLUMNS
from ctharmony.evaluate.report import ReportFiles
from ctharmony.evaluate.reproducibility import summary_columns
from ctharmony.tracking.store import metric_key

DEFAULT_EXPERIMENT = "ctharmony-evaluate"

# summary column -> metric name
METRICS = {
    "dice_mean": "dice",
    "dice_sd": "dice_sd",
    "dice_p": "dice_p",
    "abs_volume_diff_ml_mean": "volume_diff_ml",
    "abs_volume_diff_ml_p": "volume_diff_ml_p",
    "abs_volume_ratio_pct_mean": "volume_ratio",
    "abs_volume_ratio_pct_sd": "volume_ratio_sd",
    "abs_volume_ratio_pct_p": "volume_ratio_p",
    "ccc": "ccc",
    "ccc_low": "ccc_low",
    "ccc_high": "ccc_high",
    "ba_mean_pct": "ba_mean",
    "ba_loa_low_pct": "ba_loa_low",
    "ba_loa_high_pct": "ba_loa_high",
    "dice_truth_mean": "dice_truth",
    "dice_truth_p": "dice_truth_p",
    "ccc_truth": "ccc_truth",
}
QUALITY = COLUMNS
METRICS |= {f"{name}_{stat}": name + suffix for name in QUALITY for stat, suffix in (("mean", ""), ("sd", "_sd"))}
METRICS |= {"noise_sd_ratio_ref": "noise_sd_ratio_ref", "nps_peak_ratio_ref": "nps_peak_ratio_ref"}
METRICS |= {column: column for column in summary_columns()}
SITE_METRICS = ("dice_mean", "abs_volume_ratio_pct_mean", "ccc", "noise_sd_hu_mean", "noise_sd_ratio_ref",
                "mae_t80_hu_mean")


def cohort_metrics(cohort: Cohort) -> dict[str, float]:
    """The finite summary figures of a cohort as ``{name: value}``."""
    out: dict[str, float] = {}
    for row in cohort.summary.to_dict("records"):
        out |= _row_metrics(row, METRICS, ())
    if cohort.site_summary is not None:
        for row in cohort.site_summary.to_dict("records"):
            out |= _row_metrics(row, {c: METRICS[c] for c in SITE_METRICS}, ("site", str(row["site"])))
    return out


def _row_metrics(row: dict, names: dict[str, str], prefix: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for column, name in names.items():
        value = row.get(column)
        if value is not None and not pd.isna(value) and math.isfinite(float(value)):
            out[metric_key(*prefix, name, row["protocol"], row["method"])] = float(value)
    return out


def log_evaluation(cohort: Cohort, files: ReportFiles, experiment: str = DEFAULT_EXPERIMENT,
                   run_name: str = "cohort-evaluation") -> str:
    """Log metrics, params and report artifacts in a new run of ``experiment``; returns the run id."""
    import mlflow

    params = {
        "reference_protocol": cohort.reference_protocol,
        "exams": int(cohort.exams["exam"].nunique()),
        "protocols": ",".join(cohort.protocols),
        "methods": ",".join(cohort.methods),
        "sites": int(cohort.exams["site"].nunique()),
        "failed_series": cohort.failed_series,
        "truth_masks": cohort.has_truth,
    }
    params |= {metric_key("model_uri", method): uri for method, uri in sorted(cohort.model_uris.items())}
    with tracking.start_run(experiment, run_name=run_name, tags={"ctharmony.stage": "evaluate"}) as run:
        mlflow.log_params(params)
        metrics = cohort_metrics(cohort)
        names = list(metrics)
        for start in range(0, len(names), 500):
            mlflow.log_metrics({k: metrics[k] for k in names[start : start + 500]})
        mlflow.log_artifact(str(files.markdown), "report")
        mlflow.log_artifact(str(files.html), "report")
        for path in files.tables:
            mlflow.log_artifact(str(path), "report")
        for path in files.plots:
            mlflow.log_artifact(str(path), "report/plots")
        return run.info.run_id
