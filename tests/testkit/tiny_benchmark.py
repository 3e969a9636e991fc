"""The smallest benchmark that runs every stage, the real-anatomy recipe included: 2 real cases, 64 px, one
seed, one-epoch trainings (4 segmenter and 4 harmonizer trainings, 12 conversions: minutes on 2 free cores,
more on a loaded machine)."""

from __future__ import annotations

from ctharmony.benchmark.design import BenchmarkPlan
from testkit.real_cases import REAL_DATA

NAMES = ("dcmqi-ct-3slice", "ts-example-ct")
PROTOCOLS = ("M80", "M40", "IR")
LABELS = ("real anatomy, all cases", *(f"real anatomy without {n}" for n in NAMES))


def tiny_plan(**changes) -> BenchmarkPlan:
    """The tiny plan (``changes``: fields to change, e.g. ``slices=5`` for another plan)."""
    plan = dict(
        train_patients=2, test_patients=2, unseen_patients=2, real_patients=2, slices=4, size=64, seeds=(0,),
        test_series=PROTOCOLS, bootstrap_replicates=200, experiment="ctharmony-benchmark-test", real_training=True,
        workers=1,
        real_cases=tuple((REAL_DATA / n, REAL_DATA / f"{n}-liver.nii.gz") for n in NAMES),
        harmonizer_overrides=("train.epochs_stage1=1", "train.epochs_stage2=1", "train.patches_per_epoch=32"),
        segmenter_overrides=("train.epochs_stage1=1", "train.patches_per_epoch=32"))
    return BenchmarkPlan(**{**plan, **changes})
