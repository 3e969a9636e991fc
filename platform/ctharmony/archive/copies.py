"""Copies of one instance (slices of a series sharing a SOP Instance UID): which is kept, which are not.

Only slices that passed their own checks (header, pixel element, position and orientation) come
here, so a broken copy is quarantined for its own reason and never competes with a good one. Among
the copies of one instance:

- the same bytes (the same export stored twice), or the same image with other header values (a
  re-export, an anonymised copy, another transfer syntax): one is kept (the one in the folder holding
  most of the slices, then the first by path), the others are duplicates. The same image means the
  same geometry (position, orientation, pixel spacing, frame of reference, size) and the same HU
  pixel by pixel (decoded, rescale and padding applied);
- anything else (other pixels, another position...): which copy is right cannot be told, so all of
  them are conflicts and none is used.

Example::

    copies = sort_copies(records)
    copies.kept, copies.identical, copies.same_image, copies.conflicts
"""

from __future__ import annotations

import dataclasses
import filecmp
import math
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Record = dict[str, Any]
GEOMETRY_FIELDS = ("rows", "columns", "position", "orientation", "pixel_spacing", "frame_of_reference_uid")
TOLERANCE_MM = 1e-4  # decimal strings written again may round differently


@dataclasses.dataclass
class Copies:
    """Slices sorted by what their copies are: kept, byte-identical copies, same-image copies, conflicts."""

    kept: list[Record] = dataclasses.field(default_factory=list)
    identical: list[Record] = dataclasses.field(default_factory=list)
    same_image: list[Record] = dataclasses.field(default_factory=list)
    conflicts: list[Record] = dataclasses.field(default_factory=list)


def same_bytes(a: str, b: str) -> bool:
    """Whether two files hold the same bytes."""
    return filecmp.cmp(a, b, shallow=False)


def same_pixels(a: str, b: str) -> bool:
    """Whether two slice files decode to the same HU; False when either cannot be read or decoded."""
    from ctharmony.archive.reader import SeriesReadError, slice_hu

    try:
        return bool(np.array_equal(slice_hu(a), slice_hu(b)))
    except (SeriesReadError, OSError):
        return False


def same_geometry(a: Record, b: Record) -> bool:
    """Whether two header records place their image identically (``GEOMETRY_FIELDS``)."""
    for field in GEOMETRY_FIELDS:
        x, y = a.get(field), b.get(field)
        if not (isinstance(x, list | tuple) and isinstance(y, list | tuple)):
            same = x == y
        else:
            same = len(x) == len(y) and all(math.isclose(u, v, abs_tol=TOLERANCE_MM) for u, v in zip(x, y, strict=True))
        if not same:
            return False
    return True


def sort_copies(
    records: Sequence[Record],
    *,
    same_content: Callable[[str, str], bool] = same_bytes,
    same_image: Callable[[str, str], bool] = same_pixels,
) -> Copies:
    """Sort usable slices by SOP Instance UID (slices without one are kept).

    Args:
        records: header records of slices that passed their own checks.
        same_content: whether two files hold the same bytes.
        same_image: whether two files hold the same pixels (their geometry is compared from the records).
    """
    by_uid: dict[str, list[Record]] = defaultdict(list)
    copies = Copies()
    for rec in records:
        if rec.get("sop_uid"):
            by_uid[rec["sop_uid"]].append(rec)
        else:
            copies.kept.append(rec)
    folders = Counter(os.path.dirname(r["path"]) for r in records)
    for group in by_uid.values():
        group = sorted(group, key=lambda r: (-folders[os.path.dirname(r["path"])], r["path"]))
        first, identical, image = group[0], [], []
        for other in group[1:]:
            if other["bytes"] == first["bytes"] and same_content(first["path"], other["path"]):
                identical.append(other)
            elif same_geometry(first, other) and same_image(first["path"], other["path"]):
                image.append(other)
            else:
                copies.conflicts += group
                break
        else:
            copies.kept.append(first)
            copies.identical += identical
            copies.same_image += image
    return copies
