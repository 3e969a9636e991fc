"""Saved baselines: which file holds which baseline, and reading one back.

A histogram-matching baseline is an ``.npz`` holding ``reference_quantiles`` and ``meta``; a linear
recalibration a ``.json`` whose ``kind`` is ``baseline-linear-recalibration``. :func:`is_baseline_file`
looks inside the file (not only at its suffix), so the model-loader registry can tell a baseline from
another ``.npz`` / ``.json``.

Example::

    load_baseline("out/baselines/linear-recalibration.json").name
    # -> 'baseline-linear-recalibration'
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from ctharmony.baselines.base import Baseline
from ctharmony.baselines.histogram import HISTOGRAM_NAME, HistogramMatchingBaseline
from ctharmony.baselines.linear import LINEAR_NAME, LinearRecalibrationBaseline

BASELINE_SUFFIXES = (".npz", ".json")


def is_baseline_file(path: str | Path) -> bool:
    """True when ``path`` is a saved baseline (an ``.npz`` with reference quantiles, or a linear ``.json``)."""
    path = Path(path)
    if not path.is_file() or path.suffix.lower() not in BASELINE_SUFFIXES:
        return False
    try:
        if path.suffix.lower() == ".npz":
            with zipfile.ZipFile(path) as archive:
                return {"reference_quantiles.npy", "meta.npy"} <= set(archive.namelist())
        doc = json.loads(path.read_text(encoding="utf-8"))
        return isinstance(doc, dict) and doc.get("kind") in (LINEAR_NAME, HISTOGRAM_NAME) and "coefficients" in doc
    except (OSError, ValueError, zipfile.BadZipFile):
        return False


def load_baseline(path: str | Path) -> Baseline:
    """Load a saved baseline: ``.npz`` = histogram matching, ``.json`` = linear recalibration.

    Raises:
        ValueError: not a baseline artifact, or an unreadable one (names the file).
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".npz":
        return HistogramMatchingBaseline.load(path)
    if suffix == ".json":
        return LinearRecalibrationBaseline.load(path)
    raise ValueError(f"{path}: not a baseline artifact (expected .npz or .json)")
