"""The benchmark's end-to-end run, shared by its workflow and real-anatomy-recipe tests (one run per session:
the tiny benchmark with the real-anatomy recipe at 2 real cases, 64 px, one seed; every stage runs for real).
The trainers' and converter's calls are recorded, so the tests see that no fold ever trained on its held-out
real patient and that each fold converts only that patient's archive."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ctharmony.benchmark.workflow import run_benchmark
from ctharmony.stages import JOURNAL
from testkit.real_cases import require_real_data
from testkit.tiny_benchmark import tiny_plan


@pytest.fixture(scope="session")
def benchmark_run(tmp_path_factory):
    """One benchmark with the real-anatomy recipe, the trainers' and converter's calls recorded."""
    import ctharmony.infer.pipeline as pipeline
    import ctharmony.train.launch as launch
    import ctharmony.train.segmenter as segmenter
    import ctharmony.train.segmenter_data as segmenter_data

    require_real_data()
    calls: dict[str, list[dict]] = {"segmenter": [], "harmonizer": [], "convert": []}
    real = (segmenter.train_segmenter, segmenter_data.archive_records, launch.train, pipeline.convert_archive)

    def train_segmenter(catalog, masks, spec, **kwargs):
        data = kwargs.get("data")
        calls["segmenter"].append({"catalog": Path(catalog), "cases": set(),
                                   "originals": {o.name for o in data.originals} if data else set(),
                                   "excluded": {c for a in data.archives for c in a.exclude_cases} if data else set()})
        outcome = real[0](catalog, masks, spec, **kwargs)
        calls["segmenter"][-1]["model"] = outcome.model_uri
        return outcome

    def archive_records(source, target="M80"):
        records = real[1](source, target)
        calls["segmenter"][-1]["cases"] |= {r["case"] for r in records if r["case"]}
        return records

    def train(spec, catalog, **kwargs):
        outcome = real[2](spec, catalog, **kwargs)
        calls["harmonizer"].append({"catalog": Path(catalog), "overrides": list(kwargs["overrides"]),
                                    "model": outcome.model_uri})
        return outcome

    def convert_archive(catalog, model, segmenter_uri, target, *args, **kwargs):
        calls["convert"].append({"catalog": Path(catalog), "model": str(model), "segmenter": str(segmenter_uri),
                                 "target": Path(target)})
        return real[3](catalog, model, segmenter_uri, target, *args, **kwargs)

    out = tmp_path_factory.mktemp("benchmark-real")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(segmenter, "train_segmenter", train_segmenter)
        patch.setattr(segmenter_data, "archive_records", archive_records)
        patch.setattr(launch, "train", train)
        patch.setattr(pipeline, "convert_archive", convert_archive)
        outcome = run_benchmark(out, tiny_plan())
    journal = {e["name"]: e["value"] for e in json.loads((out / JOURNAL).read_text())["stages"]}
    return out, outcome, calls, journal
