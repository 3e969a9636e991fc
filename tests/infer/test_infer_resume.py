"""Writer + resume protocol without Ray: all-or-nothing series folders, idempotent rewrites, progress lines."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ctharmony.infer.pipeline import read_catalog_row
from ctharmony.infer.progress import ConversionProgress
from ctharmony.infer.resume import NO_RUN, OutputBusyError, OutputLayout, process_start, series_dirname
from ctharmony.infer.writer import write_converted_series
from testkit.synthetic_ct import write_ct_series


@pytest.fixture
def converted_row(tmp_path):
    """A pipeline row as the writer receives it: a real series read back, plus stand-in model outputs."""
    files = write_ct_series(tmp_path / "src", slices=3, rows=16, columns=16)
    row = read_catalog_row({"series_key": "1.2.3.4", "series_uid": "1.2.3.4", "study_uid": "", "patient_key": "k",
                            "site": "A", "protocol": "M40", "files": [str(f) for f in files]})
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
    assert not any(p.is_file() for p in (out / ".staging").rglob("*"))
    assert OutputLayout(out).completed_keys() == {"1.2.3.4"}


def test_a_failed_write_leaves_nothing_behind(converted_row, tmp_path):
    out = tmp_path / "out"
    OutputLayout(out).prepare()
    converted_row["mask_harmonized"] = np.zeros((2, 16, 16), np.uint8)  # wrong shape: the SEG writer refuses
    record = write_converted_series(converted_row, out)
    assert record["status"] == "failed" and record["reason"].startswith("write: ValueError")
    assert not any((out / "series").iterdir()) and not any(p.is_file() for p in (out / ".staging").rglob("*"))


def test_commit_refuses_a_second_copy(tmp_path):
    layout = OutputLayout(tmp_path)
    layout.prepare()
    first, second = layout.new_staging_dir("9.9"), layout.new_staging_dir("9.9")
    for staging in (first, second):
        layout.write_record(staging, {"series_key": "9.9", "output_dir": str(staging / "harmonized")})
    assert layout.commit(first, "9.9") is True
    assert layout.commit(second, "9.9") is False and not second.exists()
    assert layout.read_record("9.9")["output_dir"] == str(tmp_path / "series" / "9.9" / "harmonized")


def test_folder_names_are_safe_and_two_keys_never_share_one(tmp_path):
    assert series_dirname("1.2.840.113619.2.55.3") == "1.2.840.113619.2.55.3"  # a UID names its own folder
    keys = ("a/b", "a_b", "a:b", "1.2/../x", "..", ".hidden", "9" * 300, "9" * 301)
    names = {key: series_dirname(key) for key in keys}
    assert len(set(names.values())) == len(keys), names
    assert names["a_b"] == "a_b" and names["a/b"].startswith("a_b-") and names["1.2/../x"].startswith("1.2_.._x-")
    assert all(re.fullmatch(r"[0-9A-Za-z_][0-9A-Za-z._-]{0,139}", name) for name in names.values()), names
    layout = OutputLayout(tmp_path)
    layout.prepare()
    for key in ("a/b", "a_b"):
        staging = layout.new_staging_dir(key)
        layout.write_record(staging, {"series_key": key})
        assert layout.commit(staging, key) is True
    assert layout.completed_keys() == {"a/b", "a_b"} and len(list(layout.series_root.iterdir())) == 2
    with pytest.raises(ValueError, match="empty series key"):
        series_dirname("")


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



# --- one run per output folder (issue 11) ----------------------------------------------------------------

HOLDER = """
import sys, time
from ctharmony.infer.resume import OutputLayout
with OutputLayout(sys.argv[1]).exclusive() as layout:
    staged = layout.new_staging_dir("1.2.3")
    (staged / "half-written.dcm").write_bytes(b"partial")
    print(layout.run_id, flush=True)
    time.sleep(120)
"""


def _start(args, **kwargs) -> subprocess.Popen:
    """A child process in its own session (so that it and only it can be killed)."""
    return subprocess.Popen([sys.executable, *args], start_new_session=True, **kwargs)


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_a_second_run_refuses_and_a_killed_run_never_leaves_the_folder_stuck(tmp_path):
    out = tmp_path / "out"
    holder = _start(["-c", HOLDER, str(out)], stdout=subprocess.PIPE, encoding="utf-8", errors="replace")
    try:
        dead_run = holder.stdout.readline().strip()
        assert dead_run, "the holder process did not start"
        with pytest.raises(OutputBusyError) as refused, OutputLayout(out).exclusive():
            pass
        message = str(refused.value)
        assert str(out.resolve()) in message and f"pid {holder.pid} on host {socket.gethostname()} since" in message
        assert message.endswith("wait for it or choose another --out")
        assert len(list((out / ".staging" / dead_run).glob("1.2.3.*/half-written.dcm"))) == 1
    finally:
        _kill(holder)  # SIGKILL: no clean-up code runs
    assert OutputLayout(out).holder()["pid"] == holder.pid  # a stale record: the kernel dropped the lock
    (out / ".results.crashed.tmp").write_bytes(b"half a parquet file")
    with OutputLayout(out).exclusive() as layout:
        assert not (out / ".staging" / dead_run).exists()  # the dead run's half-written series is gone
        assert not (out / ".results.crashed.tmp").exists()
        worker = OutputLayout(out)  # a write task elsewhere finds the run that holds OUT
        assert worker.run_id == layout.run_id != dead_run
        assert worker.new_staging_dir("9.9").parent == out / ".staging" / layout.run_id
        assert layout.results_tmp_path.name == f".results.{layout.run_id}.tmp"
        with pytest.raises(OutputBusyError, match=f"pid {os.getpid()} "):  # even from this same process
            with OutputLayout(out).exclusive():
                pass
    assert OutputLayout(out).holder() is None and not any((out / ".staging").iterdir())
    assert OutputLayout(out).run_id == NO_RUN


def test_a_live_holder_is_refused_where_file_locks_are_not_honoured(tmp_path, caplog):
    """The lock record alone (as on a file system without flock) keeps a live run's folder safe."""
    out = tmp_path / "out"
    out.mkdir()
    sleeper = _start(["-c", "import time; time.sleep(60)"])
    try:
        live = {"run_id": "live-run", "host": socket.gethostname(), "pid": sleeper.pid, "started": "earlier",
                "process_start": process_start(sleeper.pid)}
        (out / ".convert.lock").write_text(json.dumps(live), encoding="utf-8")
        (out / ".staging" / "live-run").mkdir(parents=True)
        (out / ".staging" / "live-run" / "run.json").write_text(json.dumps(live), encoding="utf-8")
        with pytest.raises(OutputBusyError, match=f"pid {sleeper.pid} .*delete .*convert.lock"):
            with OutputLayout(out).exclusive():
                pass
        OutputLayout(out).prepare()  # a live run's staging is never removed
        assert (out / ".staging" / "live-run").is_dir()
        reused = {**live, "process_start": "1"}  # the pid now belongs to another process: the run is over
        (out / ".convert.lock").write_text(json.dumps(reused), encoding="utf-8")
        with OutputLayout(out).exclusive():
            pass
    finally:
        _kill(sleeper)
    elsewhere = {**live, "host": "another-host.example"}  # unknowable liveness; the free flock says it is over
    (out / ".convert.lock").write_text(json.dumps(elsewhere), encoding="utf-8")
    caplog.set_level(logging.WARNING, logger="ctharmony.infer")
    with OutputLayout(out).exclusive():
        pass
    assert "another-host.example" in caplog.text and "taking over" in caplog.text


DRIVER = """
import sys, time
from ctharmony import cluster
from ctharmony.infer.pipeline import ConvertOptions, convert_archive
from ctharmony.infer.predictors import HarmonizerPredictor

class SlowHarmonizer(HarmonizerPredictor):
    delay = float(sys.argv[6])  # pickled with the class: the actor's own argv is Ray's

    def __call__(self, batch):
        time.sleep(self.delay)
        return super().__call__(batch)

catalog, harmonizer, segmenter, out = sys.argv[1:5]
cluster.connect(num_cpus=int(sys.argv[5]), quiet=True)  # its own embedded cluster, killed with it
convert_archive(catalog, harmonizer, segmenter, out, harmonizer_cls=SlowHarmonizer,
                options=ConvertOptions(batch_slices=4, progress_interval_s=0))
"""


def _wait_for(condition, what: str, proc: subprocess.Popen, log: Path, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the first run exited ({proc.returncode}) before {what}: {log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.mark.slow
def test_two_converts_on_one_out_and_a_killed_run_loses_no_series(subset_catalog, model_paths, tmp_path):
    import pandas as pd
    import pydicom

    from ctharmony.archive import read_series
    from ctharmony.infer.pipeline import ConvertOptions, convert_archive

    catalog = subset_catalog(tmp_path / "catalog.parquet", ("FBP", "M40"))
    keys = set(pd.read_parquet(catalog)["series_key"])
    out = tmp_path / "out"
    layout = OutputLayout(out)
    log = tmp_path / "first-run.log"  # a file, not a pipe: Ray's logs would fill a pipe and block the run
    with log.open("w") as sink:
        first = _start(["-c", DRIVER, str(catalog), *model_paths, str(out), "2", "4"],
                       stdout=sink, stderr=subprocess.STDOUT)
    try:
        _wait_for(lambda: (layout.holder() or {}).get("pid") == first.pid, "the first run held OUT", first, log)
        second = subprocess.run([str(Path(sys.executable).parent / "ctharmony"), "convert", "--catalog",
                                 str(catalog), "--harmonizer", model_paths[0], "--segmenter", model_paths[1],
                                 "--out", str(out)], capture_output=True,
                                 encoding="utf-8", errors="replace", timeout=120)
        assert second.returncode == 2, second.stderr[-3000:]
        assert f"error: {out.resolve()} is being written by pid {first.pid} on host {socket.gethostname()}" \
            in second.stderr and "choose another --out" in second.stderr
        assert "Traceback" not in second.stderr
        _wait_for(lambda: len(layout.completed_keys()) >= 1, "a first series was written", first, log)
    finally:
        _kill(first)
    survivors = layout.completed_keys()
    assert 1 <= len(survivors) < len(keys), "the first run was not stopped mid-way"
    stamps = {p: p.stat().st_mtime_ns for p in (out / "series").rglob("*") if p.is_file()}

    results = convert_archive(catalog, *model_paths, out, options=ConvertOptions(batch_slices=4,
                                                                                  progress_interval_s=0))
    assert set(results["series_key"]) == keys and (results["status"] == "done").all(), results["reason"].tolist()
    assert layout.completed_keys() == keys and sorted(p.name for p in (out / "series").iterdir()) == sorted(keys)
    for path, stamp in stamps.items():  # what the killed run committed is kept as it was
        assert path.stat().st_mtime_ns == stamp
    for row in results.itertuples():  # nothing lost, nothing half written
        files = sorted(Path(row.output_dir).glob("*.dcm"))
        assert len(files) == row.slices == 8
        assert read_series(files).shape == (8, 64, 64)
        for seg in (row.seg_original_path, row.seg_harmonized_path):
            assert pydicom.dcmread(seg).Modality == "SEG"
        assert np.load(row.mask_original_path)["mask"].shape == (8, 64, 64)
    assert pd.read_parquet(out / "results.parquet")["series_key"].is_unique
    assert not any((out / ".staging").iterdir()) and layout.holder() is None
    assert not list(out.glob(".results.*.tmp"))
