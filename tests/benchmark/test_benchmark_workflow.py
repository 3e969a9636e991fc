"""The benchmark end to end at the smallest size, declared as stages (the session's run, ``conftest.py``):
every stage runs for real and is journalled, and a resumed run takes the finished stages from the journal and
gives the same figures."""

from __future__ import annotations

import json

import pytest

import ctharmony.benchmark.workflow as benchmark_workflow
from ctharmony.benchmark.workflow import run_benchmark
from ctharmony.stages import JOURNAL
from testkit.tiny_benchmark import tiny_plan

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]
FIGURES = ("subsets", "comparisons", "recipe_comparisons", "targets", "per_seed", "models")


def test_every_stage_runs_and_is_recorded(benchmark_run):
    out, outcome, _, _ = benchmark_run
    names = list(outcome.document["seconds"])
    assert names[:4] == ["simulate", "catalog", "real-anatomy training archive", "baselines (fit)"]
    assert names[-1] == "evaluate" and "segmenter (seed 0)" in names and "harmonizer (seed 0)" in names
    journal = json.loads((out / JOURNAL).read_text())
    assert [e["name"] for e in journal["stages"]] == names
    assert all(e["seconds"] >= 0 for e in journal["stages"])
    assert journal["fingerprint"]["seeds"] == [0] and journal["fingerprint"]["size"] == 64
    models = outcome.document["models"]["0"]
    assert list(models)[:4] == ["segmenter", "harmonized", "histogram", "linear"]
    assert models["segmenter"].startswith("models:/") and models["harmonized"].startswith("models:/")
    table = outcome.document["subsets"]["synthetic"]["table"]
    assert set(table["M40"]) == {"original", "harmonized", "histogram-matching", "linear-recalibration"}
    gan = table["M40"]["harmonized"]["dice_truth"]["mean"]
    assert 0 <= gan <= 1
    headline = next(line for line in outcome.report.read_text().splitlines() if line.startswith("| synthetic, M40 |"))
    assert headline.split("|")[3].strip() == f"{gan:.3f}"  # the GAN column of the table README quotes


def test_resume_takes_the_finished_stages_and_gives_the_same_figures(benchmark_run, monkeypatch):
    out, outcome, _, _ = benchmark_run

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished stage ran again on resume")

    monkeypatch.setattr(benchmark_workflow, "simulate_subset", must_not_run)
    monkeypatch.setattr("ctharmony.simulate.simulate_archive", must_not_run)
    monkeypatch.setattr("ctharmony.train.launch.train", must_not_run)
    monkeypatch.setattr("ctharmony.train.segmenter.train_segmenter", must_not_run)
    monkeypatch.setattr("ctharmony.infer.pipeline.convert_archive", must_not_run)
    resumed = run_benchmark(out, tiny_plan(), resume=True)
    for key in FIGURES:
        assert resumed.document[key] == outcome.document[key], key
    with pytest.raises(ValueError, match="another plan"):
        run_benchmark(out, tiny_plan(slices=5), resume=True)
