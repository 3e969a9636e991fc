"""`ray job submit ... -- python convert_archive.py ...` (code only) against a local head started and stopped here."""

from __future__ import annotations

import os
import re

import pandas as pd
import pytest

from ctharmony.infer.local_head import start_local_head, submit_and_stream
from testkit.listening import listening_sockets

pytestmark = pytest.mark.slow


def test_job_submit_converts_and_its_logs_show_progress(subset_catalog, model_paths, tmp_path):
    catalog = subset_catalog(tmp_path / "catalog.parquet", ("M40",))
    out = tmp_path / "out"
    head = start_local_head(num_cpus=2)
    try:
        code, logs = submit_and_stream(
            head,
            ["--catalog", str(catalog), "--harmonizer", model_paths[0], "--segmenter", model_paths[1],
             "--out", str(out)],
            echo=False, timeout_s=400,
        )
        sockets = listening_sockets(head.process.pid)
    finally:
        head.stop()
    assert code == 0, logs[-3000:]
    assert "gcs_server" in " ".join(s.process for s in sockets)
    assert not [s for s in sockets if not s.loopback]  # every port of the head binds 127.0.0.1
    assert re.search(r"progress: 2/2 series \(done 2, failed 0\)", logs), logs[-3000:]
    assert "summary: 2 series converted, 0 failed" in logs
    assert "succeeded" in logs  # the job CLI's final status line
    results = pd.read_parquet(out / "results.parquet")
    assert (results["status"] == "done").sum() == 2
    with pytest.raises(ProcessLookupError):  # the head's whole process group is gone
        os.killpg(head.process.pid, 0)
