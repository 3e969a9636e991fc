"""One evaluation run: results files -> cohort tables -> report folder -> MLflow run.

Example::

    ev = evaluate(["OUT/results.parquet"], Path("OUT/report"), truth="OUT/masks")
    print(ev.files.html, ev.run_id)
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ctharmony.evaluate import plots
from ctharmony.evaluate.cohort import ORIGINAL, Cohort, build_cohort
from ctharmony.evaluate.mlflow_log import DEFAULT_EXPERIMENT, log_evaluation
from ctharmony.evaluate.report import ReportFiles, headline, write_report

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Evaluation:
    """A finished evaluation: the cohort tables, the report files and the MLflow run (None if not logged)."""

    cohort: Cohort
    files: ReportFiles
    run_id: str | None
    headline: str


def find_catalog(results: Sequence[str | Path]) -> Path | None:
    """A ``catalog.parquet`` beside the first results file or one folder up, if there is one."""
    first = Path(results[0]).resolve()
    for candidate in (first.parent / "catalog.parquet", first.parent.parent / "catalog.parquet"):
        if candidate.is_file():
            return candidate
    return None


def image_loader(cohort: Cohort, catalog: Path | None) -> Callable[[str, str, str], np.ndarray | None]:
    """``images(exam, protocol, method)``: originals from the catalog's files, converted ones from output_dir."""
    from ctharmony.archive import CatalogError, read_catalog

    files: dict[str, list[str]] = {}
    if catalog is not None:
        try:
            files = {row.series_key: list(row.files) for row in read_catalog(catalog).series(status=None)}
        except CatalogError as err:
            log.warning("example slices: cannot use the catalog (%s); showing masks only", err)

    def images(exam: str, protocol: str, method: str) -> np.ndarray | None:
        rows = cohort.sources
        match = rows[(rows["exam"] == exam) & (rows["protocol"] == protocol) & (rows["method"] == method)]
        if match.empty:
            return None
        row = match.iloc[0]
        if method == ORIGINAL:
            source = files.get(row["series_key"])
            return plots.read_image(source) if source else None
        return plots.read_image(row["output_dir"]) if row["output_dir"] and Path(row["output_dir"]).is_dir() else None

    return images


def evaluate(
    results: Sequence[str | Path],
    out: str | Path,
    reference_protocol: str = "M80",
    truth: str | Path | None = None,
    experiment: str | None = DEFAULT_EXPERIMENT,
    catalog: str | Path | None = None,
) -> Evaluation:
    """Evaluate conversion results against the reference protocol (and true masks); write and log the report.

    ``experiment=None`` skips MLflow. ``catalog`` (default: one found beside the results) supplies the
    original images for the example slices.
    """
    results = [Path(r) for r in results]
    cohort = build_cohort(results, reference_protocol=reference_protocol, truth=truth)
    catalog_path = Path(catalog) if catalog is not None else find_catalog(results)
    files = write_report(cohort, Path(out), images=image_loader(cohort, catalog_path))
    run_id = log_evaluation(cohort, files, experiment) if experiment else None
    return Evaluation(cohort, files, run_id, headline(cohort))
