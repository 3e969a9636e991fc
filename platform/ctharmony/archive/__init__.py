"""DICOM archive I/O: header-only catalog, series reader to :class:`Volume`, DICOM / DICOM SEG writers."""

from ctharmony.archive.volume import Volume

__all__ = ["Volume"]
