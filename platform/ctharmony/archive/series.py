"""Slices -> series: group header records, split mixed series, sort along the normal, check geometry.

Grouping starts from the SeriesInstanceUID (files without one are grouped by folder, frame of
reference and description, under a surrogate UID derived from their SOP Instance UIDs) and splits
further when orientation, ImageType or image size differ; the largest part keeps the UID as its
``series_key``, the others get ``.2``, ``.3``... Slices are sorted by their position along the slice
normal (row x column direction cosines), and the slice spacing is the median step between those
positions, never SliceThickness. Gaps, variable spacing and gantry tilt are flagged in
``warnings``; duplicate positions, missing geometry or mixed pixel spacing quarantine the series.

Example:
    >>> geo = slice_geometry([[0, 0, 4.0], [0, 0, 0.0], [0, 0, 2.0]], [1, 0, 0, 0, 1, 0])
    >>> geo.order, geo.spacing
    ([1, 2, 0], 2.0)
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ctharmony.archive import quarantine as q

GROUPED_ERRORS = (q.NOT_CT, q.LOCALIZER, q.MULTIFRAME)  # one row per series, not one per file
TILT_DEGREES = 0.1
GAP_FACTOR = 1.5
SPACING_TOLERANCE_MM = 0.01


@dataclasses.dataclass
class Geometry:
    """Order of the slices along the normal, their spacing, and what looks wrong."""

    order: list[int]
    spacing: float
    normal: np.ndarray
    warnings: list[str]
    error: str = ""


def surrogate_series_uid(sop_uids: Sequence[str]) -> str:
    """A deterministic UID for slices whose SeriesInstanceUID is empty (from their SOP Instance UIDs)."""
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=["ctharmony-surrogate-series", *sorted(sop_uids)])


def slice_geometry(positions: Sequence[Sequence[float]], orientation: Sequence[float]) -> Geometry:
    """Sort slices along the normal of ``orientation`` and derive the spacing from their positions."""
    cosines = np.asarray(orientation, dtype=np.float64)
    normal = np.cross(cosines[:3], cosines[3:])
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    along = pos @ normal
    order = [int(i) for i in np.argsort(along, kind="stable")]
    if len(order) < 2:
        return Geometry(order, math.nan, normal, [])
    steps = np.diff(along[order])
    if np.any(steps < 1e-3):
        count = int(np.sum(steps < 1e-3)) + 1
        error = q.reason(q.INCONSISTENT_GEOMETRY, f"{count} slices share a position along the normal")
        return Geometry(order, math.nan, normal, [], error)
    spacing = float(np.median(steps))
    warnings = []
    gaps = steps > GAP_FACTOR * spacing
    if gaps.any():
        missing = int(np.sum(np.round(steps[gaps] / spacing) - 1))
        warnings.append(f"gap: about {missing} missing slice(s) at {int(gaps.sum())} place(s)")
    regular = steps[~gaps]
    if regular.size and float(regular.max() - regular.min()) > SPACING_TOLERANCE_MM + 0.001 * spacing:
        warnings.append(f"variable spacing: steps from {regular.min():.3f} to {regular.max():.3f} mm")
    span = pos[order[-1]] - pos[order[0]]
    cos_tilt = abs(float(span @ normal)) / max(float(np.linalg.norm(span)), 1e-9)
    tilt = math.degrees(math.acos(min(1.0, cos_tilt)))
    if tilt > TILT_DEGREES:
        warnings.append(f"gantry tilt: slices are sheared by {tilt:.1f} degrees (read as if untilted)")
    return Geometry(order, spacing, normal, warnings)


def _orientation_key(values: Sequence[float]) -> tuple[float, ...]:
    return tuple(round(float(v), 3) for v in values)


def _series_row(records: list[dict[str, Any]], classify: Callable[[dict[str, Any]], tuple[str, str]]) -> dict:
    first = records[0]
    row = {key: first.get(key, default) for key, default in q.CATALOG_DEFAULTS.items()}
    row["bytes"] = int(sum(r["bytes"] for r in records))
    row["slices"] = len(records)
    row["files"] = [r["path"] for r in records]
    row["warnings"] = ""
    row["_sop_uids"] = [r["sop_uid"] for r in records]
    bad_geometry = [r["path"] for r in records if len(r["position"]) != 3 or len(r["orientation"]) != 6]
    if bad_geometry:
        row.update(status="quarantined", reason=q.reason(
            q.INCONSISTENT_GEOMETRY, f"{len(bad_geometry)} slice(s) without ImagePositionPatient/Orientation"))
        return row
    if len({tuple(r["pixel_spacing"]) for r in records}) > 1:
        row.update(status="quarantined", reason=q.reason(q.INCONSISTENT_GEOMETRY, "pixel spacing differs"))
        return row
    if len({r["frame_of_reference_uid"] for r in records}) > 1:
        row.update(status="quarantined", reason=q.reason(q.INCONSISTENT_GEOMETRY, "several frames of reference"))
        return row
    geo = slice_geometry([r["position"] for r in records], first["orientation"])
    row["files"] = [records[i]["path"] for i in geo.order]
    row["warnings"] = "; ".join(geo.warnings)
    pixel = first["pixel_spacing"] or [math.nan, math.nan]
    row["spacing"] = [geo.spacing, float(pixel[0]), float(pixel[1])]
    if geo.error:
        row.update(status="quarantined", reason=geo.error)
    elif len(records) == 1:
        row.update(status="quarantined", reason=q.reason(q.LOCALIZER, "a single slice cannot form a volume"))
    row["protocol"], row["protocol_rule"] = classify(row)
    return row


def group_series(
    records: Sequence[dict[str, Any]], classify: Callable[[dict[str, Any]], tuple[str, str]]
) -> list[dict[str, Any]]:
    """Catalog rows (series and quarantine rows) from header records; every record lands in one row."""
    rows: list[dict[str, Any]] = []
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        error = rec.get("error", "")
        uid = rec.get("series_uid", "")
        if error and not (uid and q.category(error) in GROUPED_ERRORS):
            rows.append(q.file_row(rec["path"], error, rec.get("bytes", 0), **_known(rec)))
            continue
        identity = uid or ("no-uid", os.path.dirname(rec["path"]), rec["frame_of_reference_uid"],
                           rec["series_description"])
        split = (error, _orientation_key(rec["orientation"]), rec["image_type"], rec["rows"], rec["columns"])
        groups[(identity, split)].append(rec)
    by_identity: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for (identity, split), members in groups.items():
        error = split[0]
        if error:
            row = _series_row(members, lambda _row: ("unknown", ""))
            row.update(status="quarantined", reason=error, warnings="")
        else:
            row = _series_row(members, classify)
        by_identity[identity].append(row)
    for identity, parts in by_identity.items():
        parts.sort(key=lambda r: (r["status"] != "ok", -r["slices"], r["files"][0]))
        base = identity if isinstance(identity, str) else surrogate_series_uid(parts[0]["_sop_uids"])
        for index, part in enumerate(parts):
            del part["_sop_uids"]
            part["series_key"] = base if index == 0 else f"{base}.{index + 1}"
            if not isinstance(identity, str):
                note = "no SeriesInstanceUID: surrogate series_key"
                part["warnings"] = "; ".join(filter(None, [note, part["warnings"]]))
        rows.extend(parts)
    return rows


def _known(rec: dict[str, Any]) -> dict[str, Any]:
    """Header fields already read before a file-level problem, as catalog columns."""
    keep = ("series_uid", "study_uid", "frame_of_reference_uid", "patient_key", "site", "manufacturer",
            "model", "kernel", "kvp", "image_type", "series_description", "rows", "columns", "slice_thickness")
    return {k: rec[k] for k in keep if k in rec}
