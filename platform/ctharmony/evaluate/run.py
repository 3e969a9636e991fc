"""One evaluation run: results files -> cohort tables -> report folder -> MLflow run.

Example::

    ev = evaluate(["OUT/results.parquet"], Path("OUT/report"), truth="OUT/masks", truth_images="OUT/truth")
    print(ev.files.html, ev.run_id)
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ctharmony.evaluate import image_quality
from ctharmony.evaluate.cohort import Cohort, build_cohort
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


find_catalog = image_quality.find_catalog  # where it lives now; kept importable from here


def image_loader(cohort: Cohort, catalog: Path | None) -> Callable[[str, str, str], np.ndarray | None]:
    """``images(exam, protocol, method)``: originals from the catalog's files, converted ones from output_dir."""
    series = image_quality.SeriesImages(image_quality.series_files(catalog))  # one rule for where a series is

    def images(exam: str, protocol: str, method: str) -> np.ndarray | None:
        rows = cohort.sources
        match = rows[(rows["exam"] == exam) & (rows["protocol"] == protocol) & (rows["method"] == method)]
        if match.empty:
            return None
        volume = image_quality.read_volume(series.source(match.iloc[0].to_dict()))
        return None if volume is None else volume.hu

    return images


def evaluate(
    results: Sequence[str | Path],
    out: str | Path,
    reference_protocol: str = "M80",
    truth: str | Path | None = None,
    experiment: str | None = DEFAULT_EXPERIMENT,
    catalog: str | Path | None = None,
    truth_images: str | Path | None = None,
    radiomics: bool = True,
) -> Evaluation:
    """Evaluate conversion results against the reference protocol (and true masks); write and log the report.

    ``experiment=None`` skips MLflow. ``catalog`` (default: one found beside the results) supplies the
    original images for the example slices and the image quality. ``truth`` (true masks) turns on the
    image-quality table; ``truth_images`` (``<StudyInstanceUID>/T80.npz``) adds MAE / SSIM to the noise-free T80
    and the noise-free reference of the radiomics reproducibility (``radiomics=False`` skips it).
    """
    results = [Path(r) for r in results]
    catalog_path = Path(catalog) if catalog is not None else find_catalog(results)
    cohort = build_cohort(results, reference_protocol=reference_protocol, truth=truth, truth_images=truth_images,
                          catalog=catalog_path, radiomics=radiomics)
    files = write_report(cohort, Path(out), images=image_loader(cohort, catalog_path))
    run_id = log_evaluation(cohort, files, experiment) if experiment else None
    return Evaluation(cohort, files, run_id, headline(cohort))
