"""DICOM archive I/O: header-only catalog, series reader to :class:`Volume`, DICOM / DICOM SEG writers."""

from __future__ import annotations

from ctharmony.archive.volume import Volume
from ctharmony.lazy import lazy_exports

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

__getattr__ = lazy_exports(__name__, {
    "Catalog": "catalog_table", "CatalogError": "catalog_table", "SeriesRow": "catalog_table",
    "SeriesReadError": "reader", "read_series": "reader",
    "build_catalog": "catalog", "read_catalog": "catalog", "summarize": "catalog",
    "write_derived_series": "derived_writer", "write_seg": "seg", "read_seg": "seg",
})
