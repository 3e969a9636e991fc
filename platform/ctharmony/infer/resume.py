"""Resumable, all-or-nothing outputs: one folder per series, staged then renamed into place.

Layout under the output folder ``OUT``::

    OUT/series/<series_key>/harmonized/*.dcm   the harmonized DICOM series
    OUT/series/<series_key>/seg_original.dcm   DICOM SEG of the original series
    OUT/series/<series_key>/seg_harmonized.dcm DICOM SEG of the harmonized series
    OUT/series/<series_key>/mask_*.npz         masks: mask=uint8 (z, y, x), spacing=float64[3]
    OUT/series/<series_key>/result.json        the series' results row (written last)
    OUT/.staging/<series_key>.<random>/        work in progress (never read; removed on the next run)
    OUT/results.parquet                        one row per series, rebuilt from the folders

A series folder appears only through ``os.rename`` of a finished staging folder, so it is either
complete or absent; a second writer of the same series finds the folder taken and discards its copy,
so a retried or duplicated task never yields two outputs.

Example:
    >>> layout = OutputLayout("converted")  # doctest: +SKIP
    >>> layout.completed_keys()  # doctest: +SKIP
    {'1.2.840...1', '1.2.840...2'}
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

RESULT_FILE = "result.json"
PATH_FIELDS = ("output_dir", "seg_original_path", "seg_harmonized_path", "mask_original_path",
               "mask_harmonized_path")


def series_dirname(series_key: str) -> str:
    """A file-system-safe folder name for a series key (UIDs pass unchanged)."""
    name = re.sub(r"[^0-9A-Za-z._-]", "_", str(series_key)).strip(".")
    if not name:
        raise ValueError(f"series key {series_key!r} gives an empty folder name")
    return name


class OutputLayout:
    """Paths of a conversion's outputs and the staging / commit protocol."""

    def __init__(self, out: str | Path) -> None:
        self.root = Path(out).expanduser().resolve()
        self.series_root = self.root / "series"
        self.staging_root = self.root / ".staging"
        self.results_path = self.root / "results.parquet"

    def prepare(self, clean_staging: bool = True) -> None:
        """Create the folders; drop leftovers of interrupted runs (never complete by construction)."""
        self.series_root.mkdir(parents=True, exist_ok=True)
        if clean_staging and self.staging_root.exists():
            shutil.rmtree(self.staging_root, ignore_errors=True)
        self.staging_root.mkdir(parents=True, exist_ok=True)

    def series_dir(self, series_key: str) -> Path:
        return self.series_root / series_dirname(series_key)

    def is_done(self, series_key: str) -> bool:
        return (self.series_dir(series_key) / RESULT_FILE).is_file()

    def new_staging_dir(self, series_key: str) -> Path:
        path = self.staging_root / f"{series_dirname(series_key)}.{uuid.uuid4().hex[:12]}"
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


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
