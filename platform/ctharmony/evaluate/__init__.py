"""Cohort evaluation: Dice, liver volumes, CCC with CI, Bland-Altman, paired t-test, radiomics reproducibility, report.

Entry point: :func:`ctharmony.evaluate.run.evaluate` (the ``ctharmony evaluate`` command). Modules load
on first use, so importing metrics never pulls in scipy, matplotlib or MLflow (baselines: ``ctharmony.baselines``).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "dice": "metrics", "liver_volume_ml": "metrics", "volume_difference": "metrics",
    "bland_altman": "stats", "lins_ccc": "stats", "paired_ttest": "stats",
    "build_cohort": "cohort", "evaluate": "run",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"ctharmony.evaluate.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'ctharmony.evaluate' has no attribute {name!r}")
