"""The benchmark end to end at the smallest size, declared as stages: every stage runs for real, and a
resumed run takes the finished stages from the journal and gives the same figures."""

from __future__ import annotations

import json

import pytest

import ctharmony.benchmark.workflow as benchmark_workflow
from ctharmony.benchmark.design import BenchmarkPlan
from ctharmony.benchmark.workflow import ARMS, run_benchmark
from ctharmony.stages import JOURNAL

TINY = BenchmarkPlan(
    train_patients=2, test_patients=2, unseen_patients=2, slices=4, size=64, seeds=(0,),
    bootstrap_replicates=200, experiment="ctharmony-benchmark-test",
    harmonizer_overrides=("train.epochs_stage1=1", "train.epochs_stage2=1", "train.patches_per_epoch=32"),
    segmenter_overrides=("train.epochs_stage1=1", "train.patches_per_epoch=32"),
)
FIGURES = ("subsets", "comparisons", "targets", "per_seed", "models")


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("benchmark")
    return out, run_benchmark(out, TINY)


def test_every_stage_runs_and_is_recorded(first_run):
    out, outcome = first_run
    names = ["simulate", "catalog", "baselines (fit)", "segmenter (seed 0)", "harmonizer (seed 0)",
             *(f"convert ({arm.method}, seed 0)" for arm in ARMS), "evaluate"]
    assert list(outcome.document["seconds"]) == names
    journal = json.loads((out / JOURNAL).read_text())
    assert [e["name"] for e in journal["stages"]] == names
    assert journal["fingerprint"]["seeds"] == [0] and journal["fingerprint"]["size"] == 64
    models = outcome.document["models"]["0"]
    assert list(models) == ["segmenter", "harmonized", "histogram", "linear"]
    assert models["segmenter"].startswith("models:/") and models["harmonized"].startswith("models:/")
    table = outcome.document["subsets"]["synthetic"]["table"]
    assert set(table["M40"]) == {"original", "harmonized", "histogram-matching", "linear-recalibration"}
    gan = table["M40"]["harmonized"]["dice_truth"]["mean"]
    assert 0 <= gan <= 1
    headline = next(line for line in outcome.report.read_text().splitlines() if line.startswith("| synthetic, M40 |"))
    assert headline.split("|")[3].strip() == f"{gan:.3f}"  # the GAN column of the table README quotes


def test_resume_takes_the_finished_stages_and_gives_the_same_figures(first_run, monkeypatch):
    out, outcome = first_run

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished stage ran again on resume")

    monkeypatch.setattr(benchmark_workflow, "simulate_subset", must_not_run)
    monkeypatch.setattr("ctharmony.train.launch.train", must_not_run)
    monkeypatch.setattr("ctharmony.train.segmenter.train_segmenter", must_not_run)
    monkeypatch.setattr("ctharmony.infer.pipeline.convert_archive", must_not_run)
    resumed = run_benchmark(out, TINY, resume=True)
    for key in FIGURES:
        assert resumed.document[key] == outcome.document[key], key
    with pytest.raises(ValueError, match="another plan"):
        run_benchmark(out, BenchmarkPlan(**{**TINY.__dict__, "slices": 5}), resume=True)
