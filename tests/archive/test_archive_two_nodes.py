"""The catalog's header reads run on every node of a 2-node Ray cluster."""

from __future__ import annotations

import pytest

from ctharmony.archive.catalog import build_catalog


@pytest.mark.slow
def test_catalog_work_runs_on_both_nodes(ray_two_nodes, messy_archive, tmp_path):
    import ray

    workers = {n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) > 0}
    assert len(workers) == 2
    df = build_catalog(messy_archive["root"], tmp_path / "catalog.parquet", chunk_size=2, progress=False)
    assert set(df.attrs["node_ids"]) == workers
    assert (df["status"] == "ok").sum() == 6
