"""Conversion on a 2-node Ray cluster: work lands on both nodes; an actor dying mid-run loses nothing."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
import ray

from ctharmony.infer.pipeline import ConvertOptions, convert_archive
from ctharmony.infer.predictors import HarmonizerPredictor

pytestmark = pytest.mark.slow

# Ray workers cannot import this test module: ship its classes by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


class CrashOnceHarmonizer(HarmonizerPredictor):
    """Kills its own actor process mid-run: on its second batch, once per run (a marker file).

    It also takes half a second per series, like a real model, so that one actor cannot do all the work.
    """

    marker = ""
    calls = 0

    def __call__(self, batch):
        self.calls += 1
        time.sleep(0.5)
        try:
            if self.calls < 2:
                raise FileExistsError  # every actor first converts one series normally
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return super().__call__(batch)
        os.write(fd, self.node_id.encode())
        os.close(fd)
        os._exit(1)  # the actor dies holding this batch; Ray restarts it and retries the batch


def test_two_nodes_share_the_work_and_an_actor_crash_loses_nothing(ray_two_nodes, subset_catalog, model_paths,
                                                                     tmp_path):
    catalog = subset_catalog(tmp_path / "catalog.parquet", ("FBP", "M40"))
    out = tmp_path / "out"
    CrashOnceHarmonizer.marker = str(tmp_path / "crashed-once")
    options = ConvertOptions(batch_slices=4, harmonizer_actors=(2, 2), segmenter_actors=(1, 1),
                             tasks_in_flight_per_actor=1, wait_for_actors_s=300, progress_interval_s=0)
    results = convert_archive(catalog, model_paths[0], model_paths[1], out, options=options,
                              harmonizer_cls=CrashOnceHarmonizer)

    assert Path(CrashOnceHarmonizer.marker).is_file()  # an actor really died mid-run
    assert len(results) == 4 and results["series_key"].is_unique
    assert (results["status"] == "done").all(), results["reason"].tolist()
    workers = {n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) > 0}
    assert set(results["node_id"]) == workers  # harmonized on both nodes
    folders = sorted(p.name for p in (out / "series").iterdir())
    assert folders == sorted(results["series_key"])  # exactly one output per series
    for row in results.itertuples():
        assert len(list(Path(row.output_dir).glob("*.dcm"))) == row.slices == 8
        assert Path(row.seg_original_path).is_file() and Path(row.seg_harmonized_path).is_file()
    assert not any((out / ".staging").iterdir())  # no partial files
