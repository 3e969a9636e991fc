"""Read a CT series (one file per slice) into a :class:`Volume` in HU with LPS geometry.

Transfer syntaxes: uncompressed, JPEG 2000 (pylibjpeg-openjpeg) and JPEG lossless (python-gdcm), or
whatever else pydicom's installed decoders handle. Slices are sorted along the slice normal; the
slice spacing comes from the positions (``series.slice_geometry``). Each slice's RescaleSlope and
RescaleIntercept are applied; pixels equal to PixelPaddingValue (or within the padding range) become
``PADDING_HU``. Every slice keeps its exact ImagePositionPatient (``Volume.positions``), so gantry tilt,
gaps and uneven spacing are never regularised away; on a regular series the result matches SimpleITK's
``ImageSeriesReader`` voxel for voxel and in geometry.

Slices without Study/Series Instance UIDs (over-anonymised exports), or with values that are not valid
UIDs (``uids``), get deterministic surrogate UIDs, as do invalid Frame of Reference and SOP Instance UIDs;
they are named in ``tags["surrogate_uids"]``, so that derived series and SEGs reference valid UIDs.

Example::

    vol = read_series(sorted(Path("series").glob("*.dcm")))
    vol.shape, vol.spacing
    # -> ((20, 512, 512), (2.0, 0.977, 0.977))
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ctharmony.archive.series import Geometry, slice_geometry, surrogate_series_uid
from ctharmony.archive.uids import is_valid_uid
from ctharmony.archive.volume import Volume

PADDING_HU = -1024.0


class SeriesReadError(RuntimeError):
    """A series could not be read; the message names the file and the reason."""


def _read_file(path: Path, header_only: bool = False) -> Any:
    import pydicom

    try:
        return pydicom.dcmread(path, stop_before_pixels=header_only)
    except Exception as err:  # noqa: BLE001 - pydicom raises many types for bad files
        raise SeriesReadError(f"{path}: not a readable DICOM file ({type(err).__name__}: {err})") from err


def _floats(ds: Any, keyword: str, count: int, path: Path) -> list[float]:
    value = ds.get(keyword)
    try:
        values = [float(v) for v in value]
    except (TypeError, ValueError) as err:
        raise SeriesReadError(f"{path}: {keyword} is missing or not numeric") from err
    if len(values) != count:
        raise SeriesReadError(f"{path}: {keyword} has {len(values)} values, expected {count}")
    return values


def _hu(ds: Any, path: Path) -> np.ndarray:
    """Decode one slice and apply padding and rescale."""
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        raise SeriesReadError(f"{path}: multi-frame images are not supported")
    if "PixelData" not in ds:
        raise SeriesReadError(f"{path}: no pixel data")
    try:
        stored = ds.pixel_array
    except Exception as err:  # noqa: BLE001 - decoder errors come in many types
        syntax = getattr(ds.file_meta, "TransferSyntaxUID", "unknown")
        raise SeriesReadError(f"{path}: pixel data cannot be decoded (transfer syntax {syntax}): {err}") from err
    if stored.ndim != 2:
        raise SeriesReadError(f"{path}: expected a 2-D grey image, got shape {stored.shape}")
    slope, intercept = _rescale(ds, path)
    hu = stored.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    padding = ds.get("PixelPaddingValue")
    if padding is not None:
        limit = ds.get("PixelPaddingRangeLimit", padding)
        low, high = sorted((int(padding), int(limit)))
        hu[(stored >= low) & (stored <= high)] = PADDING_HU
    return hu


def slice_hu(path: str | Path) -> np.ndarray:
    """One slice file's image in HU (rescale and padding applied), as :func:`read_series` reads it."""
    return _hu(_read_file(Path(path)), Path(path))


def _rescale(ds: Any, path: Path) -> tuple[float, float]:
    """RescaleSlope and RescaleIntercept (absent or empty: 1 and 0); a zero or non-finite slope is an error."""
    values = []
    for keyword, default in (("RescaleSlope", 1.0), ("RescaleIntercept", 0.0)):
        raw = ds.get(keyword)
        try:
            value = default if raw is None or raw == "" else float(raw)
        except (TypeError, ValueError) as err:
            raise SeriesReadError(f"{path}: {keyword} {raw!r} is not a number") from err
        if not np.isfinite(value) or (keyword == "RescaleSlope" and value == 0):
            raise SeriesReadError(f"{path}: {keyword} is {raw!r}: stored values cannot be turned into HU")
        values.append(value)
    return values[0], values[1]


def _uid(ds: Any, keyword: str, meta_keyword: str = "") -> str:
    value = str(ds.get(keyword, "") or "")
    if not value and meta_keyword:
        value = str(getattr(ds, "file_meta", {}).get(meta_keyword, "") or "")
    return value


def read_series(files: Sequence[str | Path]) -> Volume:
    """Read the slices in ``files`` (any order) into a Volume; raises :class:`SeriesReadError`."""
    paths = [Path(f) for f in files]
    if not paths:
        raise SeriesReadError("read_series: no files given")
    datasets = [_read_file(p) for p in paths]
    positions, direction, geometry = _planes(datasets, paths)
    ordered = [(datasets[i], paths[i]) for i in geometry.order]
    slices = [_hu(ds, path) for ds, path in ordered]
    shape = slices[0].shape
    for (_, path), hu in zip(ordered, slices, strict=True):
        if hu.shape != shape:
            raise SeriesReadError(f"{path}: image size {hu.shape} differs from {shape}")
    first = ordered[0][0]
    row_spacing, column_spacing = _floats(first, "PixelSpacing", 2, ordered[0][1])
    if not (row_spacing > 0 and column_spacing > 0 and np.isfinite([row_spacing, column_spacing]).all()):
        raise SeriesReadError(f"{ordered[0][1]}: PixelSpacing {[row_spacing, column_spacing]} is not positive")
    z_spacing = geometry.spacing
    if not np.isfinite(z_spacing):  # a single slice: the best we have is its thickness
        z_spacing = float(first.get("SliceThickness", 1.0) or 1.0)
    sop_uids = [_uid(ds, "SOPInstanceUID", "MediaStorageSOPInstanceUID") for ds, _ in ordered]
    tags = _tags(first, sop_uids, [str(p) for _, p in ordered])
    _surrogates(tags, os.path.dirname(str(ordered[0][1])))
    return Volume(
        hu=np.stack(slices),
        spacing=(z_spacing, row_spacing, column_spacing),
        direction=direction,
        tags=tags,
        positions=positions,
    )


def _surrogates(tags: dict[str, Any], folder: str) -> None:
    """Put deterministic surrogates in place of missing Study / Series UIDs and of invalid UIDs.

    The series surrogate is the catalog's (``series.surrogate_series_uid`` of the files' SOP Instance
    UIDs and folder), so a series keyed by a surrogate in the catalog is derived under that same UID.
    """
    from pydicom.uid import generate_uid

    sop_uids = tags["SOPInstanceUIDs"]
    if not is_valid_uid(tags["SeriesInstanceUID"]):
        tags["SeriesInstanceUID"] = surrogate_series_uid(sop_uids, folder)
        tags["surrogate_uids"].append("SeriesInstanceUID")
    series = tags["SeriesInstanceUID"]
    study = tags["StudyInstanceUID"]  # an invalid one keys its surrogate: the study's series stay together
    if not is_valid_uid(study):
        tags["StudyInstanceUID"] = generate_uid(entropy_srcs=["ctharmony-surrogate-study", study or series])
        tags["surrogate_uids"].append("StudyInstanceUID")
    frame = tags["FrameOfReferenceUID"]
    if frame and not is_valid_uid(frame):
        tags["FrameOfReferenceUID"] = generate_uid(entropy_srcs=["ctharmony-surrogate-frame", frame])
        tags["surrogate_uids"].append("FrameOfReferenceUID")
    if any(uid and not is_valid_uid(uid) for uid in sop_uids):
        tags["SOPInstanceUIDs"] = [
            generate_uid(entropy_srcs=["ctharmony-surrogate-sop", series, uid, str(k)])
            if uid and not is_valid_uid(uid) else uid for k, uid in enumerate(sop_uids)]
        tags["surrogate_uids"].append("SOPInstanceUID")


def read_geometry(files: Sequence[str | Path]) -> tuple[np.ndarray, np.ndarray]:
    """Where the slices of a series lie, from their headers only: ``(positions, direction)``.

    ``positions`` (z, 3) are the ImagePositionPatient of the slices sorted along the normal (LPS mm),
    ``direction`` the 3 x 3 matrix whose columns are the row, column and normal directions, as
    :func:`read_series` gives them; raises :class:`SeriesReadError` naming the file and the reason.
    """
    paths = [Path(f) for f in files]
    if not paths:
        raise SeriesReadError("read_geometry: no files given")
    datasets = [_read_file(p, header_only=True) for p in paths]
    positions, direction, _ = _planes(datasets, paths)
    return positions, direction


def _planes(datasets: list[Any], paths: list[Path]) -> tuple[np.ndarray, np.ndarray, Geometry]:
    """Positions sorted along the normal, direction (columns: row, column, normal) and slice geometry."""
    orientation = _floats(datasets[0], "ImageOrientationPatient", 6, paths[0])
    for ds, path in zip(datasets, paths, strict=True):
        if not np.allclose(_floats(ds, "ImageOrientationPatient", 6, path), orientation, atol=1e-4):
            raise SeriesReadError(f"{path}: orientation differs from {paths[0].name}'s")
    positions = [_floats(ds, "ImagePositionPatient", 3, p) for ds, p in zip(datasets, paths, strict=True)]
    geometry = slice_geometry(positions, orientation)
    if geometry.error:
        raise SeriesReadError(f"{paths[0].parent}: {geometry.error}")
    direction = np.column_stack([orientation[:3], orientation[3:], geometry.normal])
    return np.asarray([positions[i] for i in geometry.order], dtype=np.float64), direction, geometry


def _tags(first: Any, sop_uids: list[str], source_files: list[str]) -> dict[str, Any]:
    """Identifying tags of the series (no patient identity: the catalog owns the pseudonymous key)."""
    return {
        "StudyInstanceUID": _uid(first, "StudyInstanceUID"),
        "SeriesInstanceUID": _uid(first, "SeriesInstanceUID"),
        "FrameOfReferenceUID": _uid(first, "FrameOfReferenceUID"),
        "SOPClassUID": _uid(first, "SOPClassUID", "MediaStorageSOPClassUID"),
        "SOPInstanceUIDs": sop_uids,
        "source_files": source_files,
        "Modality": str(first.get("Modality", "")),
        "Manufacturer": str(first.get("Manufacturer", "")),
        "SeriesDescription": str(first.get("SeriesDescription", "")),
        "ConvolutionKernel": "\\".join(str(k) for k in np.atleast_1d(first.get("ConvolutionKernel", []) or [])),
        "SliceThickness": float(first.get("SliceThickness", 0.0) or 0.0),
        "surrogate_uids": [],
    }
