"""The catalog as read back: a validated table and typed series rows (one reader, see ``catalog.read_catalog``).

``Catalog.frame`` is the pandas DataFrame in the contract's column order and types (for summaries and
tabular work); ``Catalog.series`` gives :class:`SeriesRow` s, frozen dataclasses whose fields are the
catalog's columns with real Python types: ``files`` is a tuple of paths, ``spacing`` a tuple of floats.

Example::

    from ctharmony.archive import read_catalog
    rows = read_catalog("catalog.parquet").series(status="ok", protocols=("M80",))
    rows[0].files[:1], rows[0].spacing
    # -> (('/archive/site-a/p1/0001.dcm',), (2.5, 0.7, 0.7))
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ctharmony.archive import quarantine as q

REQUIRED_COLUMNS = ("series_key", "study_uid", "patient_key", "protocol", "files", "status")


class CatalogError(ValueError):
    """A catalog file cannot be read or breaks the contract (the message names the file and the problem)."""


@dataclasses.dataclass(frozen=True)
class SeriesRow:
    """One catalog row with typed fields (field names are the catalog's columns, in order).

    ``spacing`` is (z, y, x) mm and ``slice_steps_mm`` the distinct steps between slice planes; both
    are empty on a quarantine row, like ``files`` on none (a quarantine row holds its file).
    """

    series_key: str
    series_uid: str
    study_uid: str
    frame_of_reference_uid: str
    patient_key: str
    site: str
    manufacturer: str
    model: str
    kernel: str
    kvp: float
    image_type: str
    series_description: str
    protocol_name: str
    recon_info: str
    protocol: str
    protocol_rule: str
    rows: int
    columns: int
    slices: int
    spacing: tuple[float, ...]
    slice_thickness: float
    geometry: str
    tilt_degrees: float
    largest_gap_mm: float
    slice_steps_mm: tuple[float, ...]
    files: tuple[str, ...]
    bytes: int
    status: str
    reason: str
    warnings: str

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> SeriesRow:
        """A row from one record of the validated frame (missing values become the contract's defaults)."""
        values = {}
        for field in dataclasses.fields(cls):
            value = record.get(field.name, q.CATALOG_DEFAULTS[field.name])
            values[field.name] = _CONVERT[field.type](value, q.CATALOG_DEFAULTS[field.name])
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        """The row as plain values, lists for the list columns (what Arrow / Ray Data rows hold)."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _text(value: Any, default: Any) -> str:
    return default if _missing(value) else str(value)


def _real(value: Any, default: Any) -> float:
    return float(default) if _missing(value) else float(value)


def _integer(value: Any, default: Any) -> int:
    return int(default) if _missing(value) else int(value)


def _texts(value: Any, default: Any) -> tuple[str, ...]:
    return () if value is None else tuple(str(v) for v in np.asarray(value, dtype=object).ravel())


def _reals(value: Any, default: Any) -> tuple[float, ...]:
    return () if value is None else tuple(float(v) for v in np.asarray(value, dtype=np.float64).ravel())


_CONVERT = {"str": _text, "float": _real, "int": _integer, "tuple[str, ...]": _texts, "tuple[float, ...]": _reals}


@dataclasses.dataclass(frozen=True)
class Catalog:
    """A catalog read from ``path``: ``frame`` (validated DataFrame) and typed rows via :meth:`series`."""

    frame: Any  # pandas.DataFrame, contract columns first, in order
    path: Path

    def series(self, status: str | None = "ok", protocols: Iterable[str] | None = None) -> list[SeriesRow]:
        """The rows of ``status`` (None: every row) whose protocol is in ``protocols`` (None: any), in order.

        Example::

            catalog.series(protocols=("M40", "M80"))
            # -> [SeriesRow(series_key='1.2.3', ..., protocol='M40', ...), ...]
        """
        frame = self.frame
        if status is not None:
            frame = frame[frame["status"] == status]
        if protocols is not None:
            wanted = [protocols] if isinstance(protocols, str) else list(protocols)
            frame = frame[frame["protocol"].isin(wanted)]
        return [SeriesRow.from_record(record) for record in frame.to_dict("records")]

    def __len__(self) -> int:
        return len(self.frame)
