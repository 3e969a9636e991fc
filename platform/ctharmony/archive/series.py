"""Slices -> series: group header records, drop copies and bad slices, sort along the normal, measure geometry.

Grouping starts from the SeriesInstanceUID; files without one, or whose value is not a valid UID
(``uids``: the warning names it), are grouped by folder, frame of reference, description (and that
value) under a surrogate UID derived from their folder and SOP Instance UIDs, so the same export in two
folders gives two distinct series and no series is ever keyed by an invalid UID. Within a series,
every slice is judged on its own first:

- slices the header reader set aside keep their own reason; slices without position/orientation are
  split off into their own quarantine row, so one bad slice (or a broken copy of a good one) never
  sinks the others;
- then copies of one instance (same SOP Instance UID, see ``copies``) are sorted: byte-identical
  copies, and copies of the same image with other header values, are kept once (the others go to a
  ``duplicate instance`` row); copies of different images are all set aside in a
  ``conflicting duplicate`` row (which copy is right cannot be told);
- slices whose pixel spacing or frame of reference differs from the rest are split off into their
  own quarantine row;
- orientation, ImageType or image size differences split the series into parts (the largest keeps the
  key, the others get ``.2``, ``.3``...).

Slices are sorted by their position along the slice normal; the nominal slice spacing is the median
step between those positions, never SliceThickness. Gantry tilt, gaps and uneven spacing are measured
(``tilt_degrees``, ``largest_gap_mm``, ``slice_steps_mm``) and described in ``geometry``; the exact
per-slice positions travel on (``Volume.positions``) and policies downstream decide what to convert.

Example:
    >>> geo = slice_geometry([[0, 0, 4.0], [0, 0, 0.0], [0, 0, 2.0]], [1, 0, 0, 0, 1, 0])
    >>> geo.order, geo.spacing, geo.describe()
    ([1, 2, 0], 2.0, 'regular')
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ctharmony.archive import quarantine as q
from ctharmony.archive.copies import same_bytes, same_pixels, sort_copies
from ctharmony.archive.uids import invalid_uid_note, is_valid_uid

GROUPED_ERRORS = (q.NOT_CT, q.LOCALIZER, q.MULTIFRAME)  # one row per series, not one per file
TILT_DEGREES = 0.1
GAP_FACTOR = 1.5
SPACING_TOLERANCE_MM = 0.01

Classifier = Callable[[dict[str, Any]], tuple[str, str]]


@dataclasses.dataclass
class Geometry:
    """Order of the slices along the normal, their spacing, and what is irregular about them."""

    order: list[int]
    spacing: float
    normal: np.ndarray
    warnings: list[str]
    error: str = ""
    tilt_degrees: float = 0.0
    largest_gap_mm: float = 0.0
    steps_mm: list[float] = dataclasses.field(default_factory=list)

    def describe(self) -> str:
        """``regular``, or what is not: ``gantry tilt``, ``gap``, ``variable spacing`` (joined by ``+``)."""
        kinds = [w.split(":", 1)[0] for w in self.warnings]
        return "+".join(kinds) if kinds else "regular"


def surrogate_series_uid(sop_uids: Sequence[str], folder: str = "") -> str:
    """A deterministic UID for slices without a SeriesInstanceUID (from their folder and SOP Instance UIDs)."""
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=["ctharmony-surrogate-series", str(folder), *sorted(sop_uids)])


def slice_geometry(positions: Sequence[Sequence[float]], orientation: Sequence[float]) -> Geometry:
    """Sort slices along the normal of ``orientation``; measure spacing, gaps, uneven steps and tilt."""
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
    span = pos[order[-1]] - pos[order[0]]
    cos_tilt = abs(float(span @ normal)) / max(float(np.linalg.norm(span)), 1e-9)
    tilt = math.degrees(math.acos(min(1.0, cos_tilt)))
    if tilt > TILT_DEGREES:
        warnings.append(f"gantry tilt: slices sheared by {tilt:.1f} degrees (kept as the scanner wrote them)")
    gaps = steps > GAP_FACTOR * spacing
    largest_gap = float(steps[gaps].max()) if gaps.any() else 0.0
    if gaps.any():
        missing = int(np.sum(np.round(steps[gaps] / spacing) - 1))
        warnings.append(f"gap: about {missing} missing slice(s) at {int(gaps.sum())} place(s), "
                        f"largest step {largest_gap:.2f} mm")
    regular = steps[~gaps]
    if regular.size and float(regular.max() - regular.min()) > SPACING_TOLERANCE_MM + 0.001 * spacing:
        warnings.append(f"variable spacing: steps from {regular.min():.3f} to {regular.max():.3f} mm")
    seen = sorted({round(float(s), 2) for s in steps})
    return Geometry(order, spacing, normal, warnings, "", round(tilt, 3), largest_gap, seen)


def group_series(
    records: Sequence[dict[str, Any]],
    classify: Classifier,
    *,
    same_content: Callable[[str, str], bool] = same_bytes,
    same_image: Callable[[str, str], bool] = same_pixels,
) -> list[dict[str, Any]]:
    """Catalog rows (series and quarantine rows) from header records; every record lands in exactly one row.

    Args:
        records: header records (``headers.read_header``).
        classify: row -> (protocol, rule).
        same_content: whether two files hold the same bytes (default: a byte comparison).
        same_image: whether two files hold the same pixels (default: both decoded to HU and compared).
    """
    rows: list[dict[str, Any]] = []
    identities: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        error = rec.get("error", "")
        uid = rec.get("series_uid", "")
        if uid and not is_valid_uid(uid):  # never a key, never a reference: the row names it in a warning
            rec = {**rec, "series_uid": "", "_invalid_series_uid": uid}
            uid = ""
        if error and not (uid and q.category(error) in GROUPED_ERRORS):
            rows.append(q.file_row(rec["path"], error, rec.get("bytes", 0), **_known(rec)))
            continue
        identity = uid or ("no-uid", os.path.dirname(rec["path"]), rec["frame_of_reference_uid"],
                           rec["series_description"], rec.get("_invalid_series_uid", ""))
        identities[identity].append(rec)
    for identity, members in identities.items():
        rows.extend(_identity_rows(identity, members, classify, same_content, same_image))
    return rows


def _identity_rows(identity: Any, members: list[dict[str, Any]], classify: Classifier,
                   same_content: Callable[[str, str], bool],
                   same_image: Callable[[str, str], bool]) -> list[dict[str, Any]]:
    """Rows of one series identity: its parts and the quarantine rows split off from it."""
    usable = [r for r in members if not r.get("error")]
    no_geometry = [r for r in usable if len(r["position"]) != 3 or len(r["orientation"]) != 6]
    if no_geometry and len(no_geometry) < len(usable):  # judged before copies: a broken copy never competes
        dropped = {id(r) for r in no_geometry}
        usable = [r for r in usable if id(r) not in dropped]
    else:
        no_geometry = []
    copies = sort_copies(usable, same_content=same_content, same_image=same_image)
    kept, duplicates, conflicts = copies.kept, copies.identical + copies.same_image, copies.conflicts
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for rec in kept + [r for r in members if r.get("error")]:
        split = (rec.get("error", ""), _orientation_key(rec["orientation"]), rec["image_type"], rec["rows"],
                 rec["columns"])
        groups[split].append(rec)
    parts, split_off = [], []
    for split, group in groups.items():
        if split[0]:
            row = _series_row(group, lambda _row: ("unknown", ""))
            row.update(status="quarantined", reason=split[0], warnings="")
        else:
            group, odd = _majority(group)
            row = _series_row(group, classify)
            split_off += odd
        parts.append(row)
    parts.sort(key=lambda r: (r["status"] != "ok", -r["slices"], r["files"][0]))
    if isinstance(identity, str):
        base, note = identity, ""
    else:
        base = surrogate_series_uid(parts[0]["_sop_uids"], identity[1])
        note = (invalid_uid_note("SeriesInstanceUID", identity[4]) or "no SeriesInstanceUID") + ": surrogate series_key"
    rows = []
    for index, part in enumerate(parts):
        del part["_sop_uids"]
        part["series_key"] = base if index == 0 else f"{base}.{index + 1}"
        part["warnings"] = "; ".join(filter(None, [note, part["warnings"]]))
        rows.append(part)
    known = _known(members[0])
    if duplicates:
        rows.append(_set_aside(f"{base}.duplicates", duplicates, _duplicate_reason(copies, base), known))
    if conflicts:
        count = len({r['sop_uid'] for r in conflicts})
        rows.append(_set_aside(f"{base}.conflicts", conflicts, q.reason(
            q.CONFLICTING_DUPLICATE, f"{len(conflicts)} files share {count} SOP Instance UID(s) with different "
                                     "content; none of the copies is used"), known))
    if no_geometry:
        rows.append(_set_aside(f"{base}.no-geometry", no_geometry, q.reason(
            q.INCONSISTENT_GEOMETRY, f"{len(no_geometry)} slice(s) without ImagePositionPatient/"
                                     "ImageOrientationPatient, split off from the series"), known))
    for index, (records, why) in enumerate(split_off):
        rows.append(_set_aside(f"{base}.split-{index + 1}", records, why, known))
    return rows


def _duplicate_reason(copies: Any, base: str) -> str:
    """Why copies of kept slices are set aside, by kind of copy."""
    kinds = []
    if copies.identical:
        kinds.append(f"{len(copies.identical)} byte-identical (the same export stored twice)")
    if copies.same_image:
        kinds.append(f"{len(copies.same_image)} with the same pixels and geometry but other header values "
                     "(a re-export, an anonymised or edited copy)")
    count = len(copies.identical) + len(copies.same_image)
    return q.reason(q.DUPLICATE, f"{count} file(s) are copies of instances kept in series {base}: {', '.join(kinds)}")


def _majority(group: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[tuple[list[dict[str, Any]], str]]]:
    """The slices that agree with the majority's pixel spacing and frame of reference, and what is split off."""
    split_off = []
    for field, label in (("pixel_spacing", "pixel spacing"), ("frame_of_reference_uid", "frame of reference")):
        values = Counter(_hashable(r[field]) for r in group)
        if len(values) < 2:
            continue
        common = values.most_common(1)[0][0]
        odd = [r for r in group if _hashable(r[field]) != common]
        group = [r for r in group if _hashable(r[field]) == common]
        shown = "" if field == "frame_of_reference_uid" else f" ({list(common)} mm kept)"
        split_off.append((odd, q.reason(q.INCONSISTENT_GEOMETRY, f"{len(odd)} slice(s) with another {label} "
                                                                 f"than the rest of the series{shown}")))
    return group, split_off


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list | tuple | np.ndarray) else value


def _orientation_key(values: Sequence[float]) -> tuple[float, ...]:
    return tuple(round(float(v), 3) for v in values)


def _series_row(records: list[dict[str, Any]], classify: Classifier) -> dict:
    first = records[0]
    row = {key: first.get(key, default) for key, default in q.CATALOG_DEFAULTS.items()}
    row["bytes"] = int(sum(r["bytes"] for r in records))
    row["slices"] = len(records)
    row["files"] = sorted(r["path"] for r in records)
    row["warnings"] = ""
    row["_sop_uids"] = [r["sop_uid"] for r in records]
    problems = []
    if any(len(r["position"]) != 3 or len(r["orientation"]) != 6 for r in records):
        problems.append(q.reason(q.INCONSISTENT_GEOMETRY, "no slice has ImagePositionPatient/Orientation"))
    else:
        geo = slice_geometry([r["position"] for r in records], first["orientation"])
        row["files"] = [records[i]["path"] for i in geo.order]
        row["warnings"] = "; ".join(geo.warnings)
        row.update(geometry=geo.describe(), tilt_degrees=geo.tilt_degrees, largest_gap_mm=geo.largest_gap_mm,
                   slice_steps_mm=geo.steps_mm)
        pixel = first["pixel_spacing"] or [math.nan, math.nan]
        row["spacing"] = [geo.spacing, float(pixel[0]), float(pixel[1])]
        if geo.error:
            problems.append(geo.error)
    if len(records) == 1:
        problems.append(q.reason(q.LOCALIZER, "a single slice cannot form a volume"))
    if problems:
        row.update(status="quarantined", reason="; ".join(problems))
    row["warnings"] = "; ".join(filter(None, [row["warnings"], *_invalid_uid_notes(records)]))
    row["protocol"], row["protocol_rule"] = classify(row)
    return row


def _invalid_uid_notes(records: list[dict[str, Any]]) -> list[str]:
    """Warnings naming the invalid Study, Frame of Reference and SOP Instance UIDs of a series' slices."""
    notes = []
    for field, keyword in (("study_uid", "StudyInstanceUID"), ("frame_of_reference_uid", "FrameOfReferenceUID"),
                           ("sop_uid", "SOPInstanceUID")):
        bad = sorted({r[field] for r in records if r.get(field) and not is_valid_uid(r[field])})
        if bad:
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            notes.append(f"{invalid_uid_note(keyword, bad[0])}{more}: derived outputs reference a surrogate")
    return notes


def _set_aside(key: str, records: list[dict[str, Any]], why: str, known: dict[str, Any]) -> dict[str, Any]:
    """A quarantine row holding several files split off from a series."""
    row = {**q.CATALOG_DEFAULTS, **known}
    row.update(series_key=key, files=sorted(r["path"] for r in records), slices=len(records),
               bytes=int(sum(r["bytes"] for r in records)), status="quarantined", reason=why, spacing=[])
    return row


def _known(rec: dict[str, Any]) -> dict[str, Any]:
    """Header fields already read before a file-level problem, as catalog columns."""
    keep = ("series_uid", "study_uid", "frame_of_reference_uid", "patient_key", "site", "manufacturer",
            "model", "kernel", "kvp", "image_type", "series_description", "rows", "columns", "slice_thickness")
    return {k: rec[k] for k in keep if k in rec}
