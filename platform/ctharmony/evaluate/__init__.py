"""Cohort evaluation: Dice, liver volumes, CCC with CI, Bland-Altman, paired t-test, radiomics reproducibility, report.

Entry point: :func:`ctharmony.evaluate.run.evaluate` (the ``ctharmony evaluate`` command). Modules load
on first use, so importing metrics never pulls in scipy, matplotlib or MLflow (baselines: ``ctharmony.baselines``).
"""

from __future__ import annotations

from ctharmony.lazy import lazy_exports

__all__ = [
    "bland_altman",
    "build_cohort",
    "dice",
    "evaluate",
    "lins_ccc",
    "liver_volume_ml",
    "paired_ttest",
    "volume_difference",
]

__getattr__ = lazy_exports(__name__, {
    "dice": "metrics", "liver_volume_ml": "metrics", "volume_difference": "metrics",
    "bland_altman": "stats", "lins_ccc": "stats", "paired_ttest": "stats",
    "build_cohort": "cohort", "evaluate": "run",
})
