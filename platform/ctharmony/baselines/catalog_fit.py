"""Fit both baselines on the training studies of a catalog (read with the archive's one catalog reader).

Pairs are the series of one study with the same shape as its reference series; volumes are read as
they are needed, so memory holds one pair at a time (references are read again for each protocol).

Example::

    histogram, linear = fit_baselines_from_catalog("train/catalog.parquet")
    linear.save("linear-recalibration.json")
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ctharmony.archive.protocols import REFERENCE_PROTOCOL
from ctharmony.baselines.histogram import HistogramMatchingBaseline, fit_reference_quantiles
from ctharmony.baselines.linear import LinearRecalibrationBaseline, fit_linear_coefficients


def fit_baselines_from_catalog(
    catalog: str | Path,
    reference_protocol: str = REFERENCE_PROTOCOL,
    study_uids: Iterable[str] | None = None,
    reader: Callable[[list[str]], Any] | None = None,
) -> tuple[HistogramMatchingBaseline, LinearRecalibrationBaseline]:
    """Fit histogram matching and linear recalibration on the ``status == ok`` series of ``catalog``.

    Args:
        catalog: the catalog Parquet file.
        reference_protocol: the target look (the harmonizer's).
        study_uids: fit on these studies only (e.g. the training split); None: all.
        reader: ``reader(files) -> Volume`` (default :func:`ctharmony.archive.read_series`).

    Raises:
        ValueError: no study has a series of ``reference_protocol`` (names the catalog).
    """
    from ctharmony.archive import read_catalog

    if reader is None:
        from ctharmony.archive import read_series as reader  # type: ignore[attr-defined,no-redef]
    wanted = None if study_uids is None else set(study_uids)
    studies: dict[str, list[Any]] = {}
    for row in read_catalog(catalog).series(status="ok"):
        if wanted is None or row.study_uid in wanted:
            studies.setdefault(row.study_uid, []).append(row)
    references: list[list[str]] = []
    pairs: dict[str, list[tuple[list[str], list[str]]]] = {}
    for study in sorted(studies):
        rows = studies[study]
        ref_rows = [r for r in rows if r.protocol == reference_protocol]
        if not ref_rows:
            continue
        ref_files = list(ref_rows[0].files)
        references.append(ref_files)
        for row in rows:
            if row.protocol != reference_protocol and row.slices in (0, ref_rows[0].slices):
                pairs.setdefault(row.protocol, []).append((list(row.files), ref_files))
    if not references:
        raise ValueError(f"{catalog}: no study has a {reference_protocol} series to fit the baselines on")

    def read_pairs(items: list[tuple[list[str], list[str]]]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for files, ref_files in items:  # read lazily: one study's pair in memory at a time
            hu, ref = reader(files).hu, reader(ref_files).hu
            if hu.shape == ref.shape:
                yield hu, ref

    histogram = HistogramMatchingBaseline(fit_reference_quantiles(reader(files).hu for files in references))
    linear = LinearRecalibrationBaseline(
        fit_linear_coefficients({p: read_pairs(items) for p, items in sorted(pairs.items())}))
    return histogram, linear


def fit_and_save_baselines(catalog: str | Path, folder: str | Path,
                           reference_protocol: str = REFERENCE_PROTOCOL) -> dict[str, Path]:
    """Fit both baselines on ``catalog`` and save them in ``folder``: ``{"histogram": path, "linear": path}``."""
    histogram, linear = fit_baselines_from_catalog(catalog, reference_protocol)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return {"histogram": histogram.save(folder / "histogram-matching.npz"),
            "linear": linear.save(folder / "linear-recalibration.json")}
