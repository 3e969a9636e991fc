"""DICOM archive I/O: header-only catalog, series reader to :class:`Volume`, DICOM / DICOM SEG writers."""

from __future__ import annotations

from ctharmony.archive.volume import Volume

__all__ = [
    "Volume",
    "Catalog",
    "CatalogError",
    "SeriesReadError",
    "SeriesRow",
    "build_catalog",
    "read_catalog",
    "read_series",
    "read_seg",
    "summarize",
    "write_derived_series",
    "write_seg",
]

_LAZY = {
    "Catalog": "ctharmony.archive.catalog_table",
    "CatalogError": "ctharmony.archive.catalog_table",
    "SeriesRow": "ctharmony.archive.catalog_table",
    "SeriesReadError": "ctharmony.archive.reader",
    "read_series": "ctharmony.archive.reader",
    "build_catalog": "ctharmony.archive.catalog",
    "read_catalog": "ctharmony.archive.catalog",
    "summarize": "ctharmony.archive.catalog",
    "write_derived_series": "ctharmony.archive.writer",
    "write_seg": "ctharmony.archive.seg",
    "read_seg": "ctharmony.archive.seg",
}


def __getattr__(name: str):  # lazy: `import ctharmony.archive` stays light (no pydicom, pyarrow, Ray)
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ctharmony.archive' has no attribute {name!r}")
