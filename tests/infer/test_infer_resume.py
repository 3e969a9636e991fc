"""Writer + resume protocol without Ray: all-or-nothing series folders, idempotent rewrites, progress lines."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from ctharmony.archive.synthetic import write_ct_series
from ctharmony.infer.pipeline import read_catalog_row
from ctharmony.infer.progress import ConversionProgress
from ctharmony.infer.resume import OutputLayout, series_dirname
from ctharmony.infer.writer import write_converted_series


@pytest.fixture
def converted_row(tmp_path):
    """A pipeline row as the writer receives it: a real series read back, plus stand-in model outputs."""
    import json

    files = write_ct_series(tmp_path / "src", slices=3, rows=16, columns=16)
    row = read_catalog_row({"series_key": "1.2.3.4", "series_uid": "1.2.3.4", "study_uid": "", "patient_key": "k",
                            "site": "A", "protocol": "M40", "files": json.dumps([str(f) for f in files])})
    assert row["status"] == "ok", row["reason"]
    mask = np.zeros(row["hu"].shape, np.uint8)
    mask[:, 4:10, 4:10] = 1
    row.update(hu_harmonized=row["hu"] + 5.0, mask_original=mask, mask_harmonized=mask,
               model_name="ctharmony-harmonizer", model_version="3", segmenter_name="ctharmony-liver-unet",
               segmenter_version="1", seconds_harmonize=0.1, seconds_segment=0.2, node_id="n1")
    return row


def test_a_series_is_written_once_and_a_retry_changes_nothing(converted_row, tmp_path):
    out = tmp_path / "out"
    OutputLayout(out).prepare()
    record = write_converted_series(converted_row, out)
    assert record["status"] == "done", record["reason"]
    folder = out / "series" / "1.2.3.4"
    stamps = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    assert len(list((folder / "harmonized").glob("*.dcm"))) == 3 and record["slices"] == 3
    voxel_ml = float(np.prod(converted_row["spacing"])) / 1000
    assert record["liver_volume_ml_original"] == pytest.approx(3 * 36 * voxel_ml)
    again = write_converted_series(converted_row, out)  # e.g. a task retried after its worker died
    assert again == record
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == stamps
    assert [p.name for p in (out / "series").iterdir()] == ["1.2.3.4"]
    assert not any((out / ".staging").iterdir())
    assert OutputLayout(out).completed_keys() == {"1.2.3.4"}


def test_a_failed_write_leaves_nothing_behind(converted_row, tmp_path):
    out = tmp_path / "out"
    OutputLayout(out).prepare()
    converted_row["mask_harmonized"] = np.zeros((2, 16, 16), np.uint8)  # wrong shape: the SEG writer refuses
    record = write_converted_series(converted_row, out)
    assert record["status"] == "failed" and record["reason"].startswith("write: ValueError")
    assert not any((out / "series").iterdir()) and not any((out / ".staging").iterdir())


def test_commit_refuses_a_second_copy(tmp_path):
    layout = OutputLayout(tmp_path)
    layout.prepare()
    first, second = layout.new_staging_dir("9.9"), layout.new_staging_dir("9.9")
    for staging in (first, second):
        layout.write_record(staging, {"series_key": "9.9", "output_dir": str(staging / "harmonized")})
    assert layout.commit(first, "9.9") is True
    assert layout.commit(second, "9.9") is False and not second.exists()
    assert layout.read_record("9.9")["output_dir"] == str(tmp_path / "series" / "9.9" / "harmonized")
    assert series_dirname("1.2/../x") == "1.2_.._x"


def test_progress_lines_and_summary(caplog):
    caplog.set_level(logging.INFO, logger="ctharmony.infer")
    progress = ConversionProgress(total=3, skipped=2, interval_s=0)
    progress.update({"status": "done", "slices": 8, "seconds_harmonize": 1.0, "node_id": "a"})
    progress.update({"status": "failed", "reason": "read: bad file", "node_id": "b"})
    progress.update({"status": "done", "slices": 8, "node_id": "b"})
    assert "progress: 3/3 series (done 2, failed 1), 16 slices" in caplog.text
    summary = progress.summary()
    assert "2 series converted, 1 failed, 2 already done" in summary and "'read': 1" in summary
    assert "{'a': 1, 'b': 2}" in summary

