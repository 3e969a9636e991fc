"""Training: paired patches from the catalog, losses, the GAN step, Ray Train DDP loops, launch.

Entry points: :func:`ctharmony.train.launch.build_trainer` / :func:`ctharmony.train.launch.train`
(the harmonizer) and :func:`ctharmony.train.segmenter.train_segmenter` (the reference liver U-Net).
"""

from __future__ import annotations

from ctharmony.lazy import lazy_exports

__all__ = [
    "TrainOutcome",
    "TrainingDataError",
    "build_trainer",
    "split_by_patient",
    "study_records",
    "train",
    "train_segmenter",
]

__getattr__ = lazy_exports(__name__, {
    "TrainOutcome": "launch", "build_trainer": "launch", "train": "launch",
    "TrainingDataError": "data", "split_by_patient": "data", "study_records": "data",
    "train_segmenter": "segmenter",
})
