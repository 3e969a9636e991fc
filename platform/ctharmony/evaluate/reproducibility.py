"""Radiomics reproducibility: do a series' liver features agree with those of the reference (and the truth)?

Every series of an exam is measured on the same voxels: the exam's reference mask (original reference
protocol, M80) on ``radiomics.SLAB_SLICES`` slices around its largest cross-section
(:mod:`.radiomics`, 82 IBSI features). With truth images, the exam's noise-free T80 is measured there
too (rows ``T80`` / ``noise-free``). Per protocol and method, each feature's Lin's CCC across exams
(:func:`.stats.lins_ccc`) is taken against the original reference protocol and against the noise-free
T80; a feature is reproducible at ``CCC >= 0.85`` (Choe et al., Radiology 2019), and the summary gives
the share of reproducible features among those with a defined CCC, overall and per feature family.

Example::

    collect = SeriesRadiomics(SeriesImages(files, truth_images))
    collect(record, reference_mask, "exam-001")      # for every mask-table row of an exam
    ccc = feature_ccc(collect.table(), "M80")
    summarize(ccc)[["protocol", "method", "radiomics_reproducible"]]
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from ctharmony.evaluate import radiomics, stats
from ctharmony.evaluate.image_quality import SeriesImages
from ctharmony.evaluate.naming import ORIGINAL

log = logging.getLogger(__name__)

THRESHOLD = 0.85  # Choe et al., Radiology 2019
TRUTH_PROTOCOL, TRUTH_METHOD = "T80", "noise-free"
KEYS = ["exam", "protocol", "method"]
AGAINST = {"": "ccc", "_truth": "ccc_truth"}  # summary suffix -> per-feature column


class SeriesRadiomics:
    """``collect(record, reference_mask, exam)``: the features of one mask-table row, kept in :meth:`table`."""

    def __init__(self, images: SeriesImages) -> None:
        self.images = images
        self.rows: list[dict[str, Any]] = []
        self._truth_measured: set[str] = set()

    def __call__(self, record: dict[str, Any], reference_mask: np.ndarray, exam: str) -> None:
        volume = self.images.volume(record)
        if volume is None:
            return
        if volume.hu.shape != reference_mask.shape:
            log.warning("%s %s %s: image shape %s differs from the reference mask's %s; no radiomics", exam,
                        record["protocol"], record["method"], volume.hu.shape, reference_mask.shape)
            return
        roi = radiomics.slab(reference_mask)
        self.rows.append({"exam": exam, "protocol": record["protocol"], "method": record["method"]}
                         | radiomics.features(volume.hu, roi))
        if exam not in self._truth_measured:  # the exam's series share its grid: the truth once per exam
            self._truth_measured.add(exam)
            t80 = self.images.truth(record["study_uid"], "T80", volume, exam, record["protocol"])
            if t80 is not None:
                self.rows.append({"exam": exam, "protocol": TRUTH_PROTOCOL, "method": TRUTH_METHOD}
                                 | radiomics.features(t80, roi))

    def table(self) -> pd.DataFrame:
        """One row per exam, protocol and method (and noise-free T80), one column per feature."""
        return pd.DataFrame(self.rows, columns=[*KEYS, *radiomics.feature_names()])


def feature_ccc(features: pd.DataFrame, reference_protocol: str = "M80") -> pd.DataFrame:
    """Per protocol, method and feature: Lin's CCC across exams against the original reference protocol
    (``ccc``; NaN for the reference itself) and against the noise-free T80 (``ccc_truth``; NaN without it)."""
    names = radiomics.feature_names()
    columns = ["protocol", "method", "feature", "family", "n", "ccc", "ccc_truth"]
    if features.empty:
        return pd.DataFrame(columns=columns)
    indexed = features.set_index("exam")
    select = (indexed["protocol"] == reference_protocol) & (indexed["method"] == ORIGINAL)
    reference = indexed[select][names]
    truth = indexed[(indexed["protocol"] == TRUTH_PROTOCOL) & (indexed["method"] == TRUTH_METHOD)][names]
    rows = []
    for (protocol, method), group in indexed.groupby(["protocol", "method"], sort=True):
        if (protocol, method) == (TRUTH_PROTOCOL, TRUTH_METHOD):
            continue
        is_reference = protocol == reference_protocol and method == ORIGINAL
        values = group[names].to_numpy(np.float64)
        against = {column: other.reindex(group.index).to_numpy(np.float64)  # paired by exam
                   for column, other in (("ccc", reference), ("ccc_truth", truth))}
        for k, name in enumerate(names):
            row = {"protocol": protocol, "method": method, "feature": name, "family": name.split("_")[0],
                   "n": int(np.isfinite(values[:, k]).sum())}
            for column, paired in against.items():
                row[column] = stats.lins_ccc(values[:, k], paired[:, k]).ccc
            if is_reference:
                row["ccc"] = np.nan  # not compared with itself
            rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def _share(ccc: np.ndarray) -> float:
    defined = ccc[np.isfinite(ccc)]
    return float((defined >= THRESHOLD).mean()) if defined.size else np.nan


def summary_columns() -> list[str]:
    """The columns :func:`summarize` adds to a cohort summary."""
    out = []
    for suffix in AGAINST:
        out += [f"radiomics_features{suffix}", f"radiomics_reproducible{suffix}", f"radiomics_ccc_median{suffix}"]
        out += [f"radiomics_reproducible{suffix}_{family}" for family in radiomics.FAMILIES]
    return out


def summarize(ccc: pd.DataFrame) -> pd.DataFrame:
    """Per protocol and method: features with a defined CCC, share reproducible (overall, per family) and
    median CCC, against the reference (``radiomics_*``) and the noise-free T80 (``radiomics_*_truth``)."""
    rows = []
    for (protocol, method), group in ccc.groupby(["protocol", "method"], sort=True):
        row: dict[str, Any] = {"protocol": protocol, "method": method, "radiomics_n": int(group["n"].max())}
        family = group["family"].to_numpy()
        for suffix, column in AGAINST.items():
            values = group[column].to_numpy(np.float64)
            defined = np.isfinite(values)
            row[f"radiomics_features{suffix}"] = int(defined.sum())
            row[f"radiomics_reproducible{suffix}"] = _share(values)
            row[f"radiomics_ccc_median{suffix}"] = float(np.median(values[defined])) if defined.any() else np.nan
            for name in radiomics.FAMILIES:
                row[f"radiomics_reproducible{suffix}_{name}"] = _share(values[family == name])
        rows.append(row)
    return pd.DataFrame(rows, columns=["protocol", "method", "radiomics_n", *summary_columns()])
