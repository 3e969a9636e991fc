"""Resumable, all-or-nothing outputs: one folder per series, staged then renamed into place.

Layout under the output folder ``OUT``::

    OUT/series/<series_key>/harmonized/*.dcm   the harmonized DICOM series
    OUT/series/<series_key>/seg_original.dcm   DICOM SEG of the original series
    OUT/series/<series_key>/seg_harmonized.dcm DICOM SEG of the harmonized series
    OUT/series/<series_key>/mask_*.npz         masks: mask=uint8 (z, y, x), spacing=float64[3]
    OUT/series/<series_key>/result.json        the series' results row (written last)
    OUT/.convert.lock                          the run writing OUT: run id, host, pid, start time
    OUT/.staging/<run_id>/<series_key>.<random>/  that run's work in progress (never read)
    OUT/results.parquet                        one row per series, rebuilt from the folders

``<series_key>`` stands for the key's folder name (:func:`series_dirname`: the key itself when it is a
UID, else a safe name with a hash of the key).

A series folder appears only through ``os.rename`` of a finished staging folder, so it is either
complete or absent; a second writer of the same series finds the folder taken and discards its copy,
so a retried or duplicated task never yields two outputs.

One run writes OUT at a time: :meth:`OutputLayout.exclusive` takes an ``fcntl.flock`` on
``OUT/.convert.lock`` (the kernel drops it when the process dies, so a killed run never leaves OUT
stuck) and a second run refuses, naming the holder. The record in the lock file also catches a live
holder where flock is not honoured (some network file systems). A run removes only the staging of
runs that are over.

Example::

    layout = OutputLayout("converted")
    with layout.exclusive():
        layout.prepare()
        layout.completed_keys()
    # -> {'1.2.840...1', '1.2.840...2'}
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("ctharmony.infer")

RESULT_FILE = "result.json"
LOCK_FILE = ".convert.lock"
RUN_FILE = "run.json"
NO_RUN = "unlocked"  # staging of writes made while no run holds OUT (e.g. a writer called directly)
DIRNAME_MAX = 120  # characters of a series key kept in its folder name
DIRNAME_HASH = 12  # hex characters of the key's hash added to a changed name
PATH_FIELDS = ("output_dir", "seg_original_path", "seg_harmonized_path", "mask_original_path",
               "mask_harmonized_path")


def series_dirname(series_key: str) -> str:
    """A file-system-safe folder name for a series key, never shared by two keys.

    UIDs and other safe keys pass unchanged; a key that had to be changed (characters replaced, dots
    stripped, cut to ``DIRNAME_MAX`` characters) carries a short hash of the key, so ``a/b`` and ``a_b``
    get two folders.
    """
    key = str(series_key)
    if not key:
        raise ValueError("an empty series key has no folder name")
    name = re.sub(r"[^0-9A-Za-z._-]", "_", key).strip(".")[:DIRNAME_MAX]
    if name == key:
        return name
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:DIRNAME_HASH]
    return f"{name or 'key'}-{digest}"


class OutputBusyError(RuntimeError):
    """Another run is writing the output folder; the message names it (pid, host, start time)."""


def process_start(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot; Linux), "" where unknown: tells a reused pid apart."""
    try:
        return Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def new_run_record() -> dict[str, Any]:
    """The record of a run starting in this process: run id, host, pid, start time."""
    host, pid = socket.gethostname(), os.getpid()
    return {"run_id": series_dirname(f"{host}-{pid}-{uuid.uuid4().hex[:8]}"), "host": host, "pid": pid,
            "started": datetime.now().astimezone().isoformat(timespec="seconds"), "process_start": process_start(pid)}


def is_alive(record: dict[str, Any]) -> bool | None:
    """Whether the run a record names still runs: True / False on this host, None on another (unknowable)."""
    if record.get("host") != socket.gethostname():
        return None
    pid = int(record.get("pid") or 0)
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    started = str(record.get("process_start") or "")
    return not started or process_start(pid) in ("", started)


class OutputLayout:
    """Paths of a conversion's outputs, the run lock and the staging / commit protocol."""

    def __init__(self, out: str | Path) -> None:
        self.root = Path(out).expanduser().resolve()
        self.series_root = self.root / "series"
        self.staging_root = self.root / ".staging"
        self.results_path = self.root / "results.parquet"
        self.lock_path = self.root / LOCK_FILE
        self._run: dict[str, Any] | None = None  # this object's run while it holds OUT

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[OutputLayout]:
        """Hold OUT for this run: a second run refuses (:class:`OutputBusyError`) until this one ends or dies.

        On entry the staging and temporary results files of runs that are over are removed; on exit this
        run's staging folder goes too and the lock file is left without a holder.
        """
        if self._run is not None:
            raise RuntimeError(f"{self.root}: this layout already holds the folder")
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise OSError(f"{self.lock_path}: cannot open the lock file: {err}") from err
        try:
            self._acquire(fd)
            run = new_run_record()
            _rewrite(fd, json.dumps(run))
            self._run = run
            (self.staging_root / run["run_id"]).mkdir(parents=True, exist_ok=True)
            (self.staging_root / run["run_id"] / RUN_FILE).write_text(json.dumps(run), encoding="utf-8")
            self.remove_stale()
            for leftover in [*self.root.glob(".results.*.tmp"), self.root / "results.parquet.tmp"]:
                if leftover != self.results_tmp_path:
                    leftover.unlink(missing_ok=True)  # a killed run's half-written results table
            yield self
        finally:
            if self._run is not None:
                shutil.rmtree(self.staging_root / self._run["run_id"], ignore_errors=True)
                _rewrite(fd, "")  # the run is over: no holder
                self._run = None
            os.close(fd)  # releases the flock

    def _acquire(self, fd: int) -> None:
        locked = True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            raise OutputBusyError(self._busy(self._wait_for_holder())) from err
        except OSError as err:  # ENOLCK, EOPNOTSUPP: no flock on this file system
            locked = False
            log.warning("%s: file locks are not available here (%s); relying on the lock file's record",
                        self.lock_path, err)
        holder = self.holder()
        if not holder or not holder.get("pid"):
            return
        alive = is_alive(holder)
        if alive or (alive is None and not locked):  # flock not honoured here, yet the holder is (or may be) live
            raise OutputBusyError(self._busy(holder) + f" (if no run is active, delete {self.lock_path})")
        if alive is None:
            log.warning("%s: the previous run (pid %s on host %s, since %s) did not release the folder; its file "
                        "lock is free, so it is over: taking over", self.root, holder.get("pid"), holder.get("host"),
                        holder.get("started"))

    def _wait_for_holder(self, seconds: float = 2.0) -> dict[str, Any] | None:
        """The holder's record (it may be writing it right now)."""
        deadline = time.monotonic() + seconds
        while (holder := self.holder()) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return holder

    def _busy(self, holder: dict[str, Any] | None) -> str:
        if not holder:
            return f"{self.root} is being written by another conversion run; wait for it or choose another --out"
        return (f"{self.root} is being written by pid {holder.get('pid')} on host {holder.get('host')} since "
                f"{holder.get('started')} (run {holder.get('run_id')}); wait for it or choose another --out")

    def holder(self) -> dict[str, Any] | None:
        """The lock file's record of the run holding OUT (or killed while holding it), None when there is none."""
        try:
            text = self.lock_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as err:
            raise OSError(f"{self.lock_path}: cannot read the lock file: {err}") from err
        return _record(text)

    @property
    def run_id(self) -> str:
        """This run's id while it holds OUT; elsewhere (a write task) the id of the run holding OUT."""
        if self._run is not None:
            return str(self._run["run_id"])
        holder = self.holder()
        return str(holder["run_id"]) if holder and holder.get("run_id") else NO_RUN

    @property
    def results_tmp_path(self) -> Path:
        """This run's temporary results table (renamed onto ``results_path`` when complete)."""
        return self.root / f".results.{self.run_id}.tmp"

    def prepare(self, clean_staging: bool = True) -> None:
        """Create the folders; drop the staging of runs that are over (never complete by construction)."""
        self.series_root.mkdir(parents=True, exist_ok=True)
        self.staging_root.mkdir(parents=True, exist_ok=True)
        if clean_staging:
            self.remove_stale()

    def remove_stale(self) -> list[str]:
        """Remove the staging folders of runs that are over; returns their names.

        Kept: the run holding OUT, and any run whose record names a live process (or, while this layout
        does not hold OUT, one on another host, whose liveness cannot be told from here).
        """
        if not self.staging_root.is_dir():
            return []
        holder = self._run or self.holder()
        removed = []
        for folder in sorted(self.staging_root.iterdir()):
            if holder and folder.name == holder.get("run_id") and (self._run or is_alive(holder) is not False):
                continue
            owner = _record(_read_text(folder / RUN_FILE)) if folder.is_dir() else None
            alive = is_alive(owner) if owner else False
            if alive or (alive is None and self._run is None):
                continue
            if folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
            else:
                folder.unlink(missing_ok=True)
            removed.append(folder.name)
        if removed:
            log.info("%s: removed the unfinished work of %d ended run(s): %s", self.root, len(removed), removed)
        return removed

    def series_dir(self, series_key: str) -> Path:
        return self.series_root / series_dirname(series_key)

    def is_done(self, series_key: str) -> bool:
        return (self.series_dir(series_key) / RESULT_FILE).is_file()

    def new_staging_dir(self, series_key: str) -> Path:
        """A fresh staging folder for one series, inside the staging of the run holding OUT."""
        path = self.staging_root / self.run_id / f"{series_dirname(series_key)}.{uuid.uuid4().hex[:12]}"
        path.mkdir(parents=True)
        return path

    def commit(self, staging: Path, series_key: str) -> bool:
        """Rename a finished staging folder into place; False (and staging removed) if already there."""
        final = self.series_dir(series_key)
        try:
            os.rename(staging, final)
            return True
        except OSError as err:
            if err.errno in (errno.EEXIST, errno.ENOTEMPTY) and (final / RESULT_FILE).is_file():
                shutil.rmtree(staging, ignore_errors=True)
                return False
            raise

    def read_record(self, series_key: str) -> dict[str, Any]:
        """The committed results row of a series, with absolute paths."""
        return self._absolute(self.series_dir(series_key), self._load(self.series_dir(series_key)))

    def completed_keys(self) -> set[str]:
        """Series keys with a committed output folder."""
        return {record["series_key"] for record in self.completed_records()}

    def completed_records(self) -> list[dict[str, Any]]:
        """Results rows of every committed series (absolute paths), sorted by series key."""
        records = []
        if self.series_root.is_dir():
            for folder in sorted(self.series_root.iterdir()):
                if (folder / RESULT_FILE).is_file():
                    records.append(self._absolute(folder, self._load(folder)))
        return sorted(records, key=lambda r: r["series_key"])

    @staticmethod
    def write_record(folder: Path, record: dict[str, Any]) -> None:
        """Write a results row into a (staging) folder; paths are stored relative to it."""
        relative = dict(record)
        for field in PATH_FIELDS:
            if relative.get(field):
                relative[field] = os.path.relpath(relative[field], folder)
        (folder / RESULT_FILE).write_text(json.dumps(relative, indent=1, default=_jsonable), encoding="utf-8")

    @staticmethod
    def _load(folder: Path) -> dict[str, Any]:
        path = folder / RESULT_FILE
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ValueError(f"{path}: unreadable results record: {err}") from err

    @staticmethod
    def _absolute(folder: Path, record: dict[str, Any]) -> dict[str, Any]:
        for field in PATH_FIELDS:
            if record.get(field):
                record[field] = str((folder / record[field]).resolve())
        return record


def _rewrite(fd: int, text: str) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode("utf-8"), 0)
    os.fsync(fd)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def _record(text: str) -> dict[str, Any] | None:
    try:
        record = json.loads(text) if text.strip() else None
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
