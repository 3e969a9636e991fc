"""Why a file or a series is set aside: reasons a person understands, and the quarantine row.

The catalog never aborts on bad input. Every file that cannot become part of a usable CT series
gets a catalog row with ``status="quarantined"`` and one of the reasons below (a short category,
a colon, and the specifics), e.g. ``"truncated file: pixel data needs 524288 bytes, 1200 remain"``.
The category before the colon is what the summary counts.

Example:
    >>> reason(NOT_DICOM, "no DICM marker and no DICOM tags")
    'not a DICOM file: no DICM marker and no DICOM tags'
    >>> category('truncated file: pixel data needs 8 bytes, 2 remain')
    'truncated file'
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

NOT_DICOM = "not a DICOM file"
UNREADABLE = "unreadable file"
TRUNCATED = "truncated file"
NO_PIXELS = "missing pixel data"
NOT_CT = "not a CT image"
LOCALIZER = "localizer or single-slice series"
INCONSISTENT_GEOMETRY = "inconsistent geometry"
UNDECODABLE = "undecodable pixel data"
UNSAFE_PATH = "unsafe path"
MULTIFRAME = "unsupported multi-frame image"
INVALID_HEADER = "invalid image header"
DUPLICATE = "duplicate instance"
CONFLICTING_DUPLICATE = "conflicting duplicate"

CATEGORIES = (
    NOT_DICOM,
    UNREADABLE,
    TRUNCATED,
    NO_PIXELS,
    NOT_CT,
    LOCALIZER,
    INCONSISTENT_GEOMETRY,
    UNDECODABLE,
    UNSAFE_PATH,
    MULTIFRAME,
    INVALID_HEADER,
    DUPLICATE,
    CONFLICTING_DUPLICATE,
)


def reason(kind: str, detail: str = "") -> str:
    """A reason string: the category, then the specifics after a colon."""
    return f"{kind}: {detail}" if detail else kind


def category(text: str) -> str:
    """The category of a reason (the part before the first colon)."""
    return text.split(":", 1)[0].strip()


# Columns of the catalog, in order, with the value a row gets when nothing is known.
CATALOG_DEFAULTS: dict[str, Any] = {
    "series_key": "",
    "series_uid": "",
    "study_uid": "",
    "frame_of_reference_uid": "",
    "patient_key": "",
    "site": "",
    "manufacturer": "",
    "model": "",
    "kernel": "",
    "kvp": math.nan,
    "image_type": "",
    "series_description": "",
    "protocol_name": "",  # ProtocolName: the acquisition protocol, shared by all its reconstructions
    "recon_info": "",  # reconstruction markers from standard and private tags (archive/recon_tags.py)
    "protocol": "unknown",
    "protocol_rule": "",
    "rows": 0,
    "columns": 0,
    "slices": 0,
    "spacing": [],  # (z, y, x) mm: median step between slice planes, then PixelSpacing (row, column)
    "slice_thickness": math.nan,
    "geometry": "",  # "regular", or what is not: "gantry tilt", "gap", "variable spacing" joined by "+"
    "tilt_degrees": 0.0,
    "largest_gap_mm": 0.0,  # the largest step between slice planes when it is a gap (> 1.5 x median), else 0
    "slice_steps_mm": [],  # the distinct steps between neighbouring slice planes (0.01 mm)
    "files": [],
    "bytes": 0,
    "status": "ok",
    "reason": "",
    "warnings": "",
}
CATALOG_COLUMNS = tuple(CATALOG_DEFAULTS)


def file_key(path: str) -> str:
    """A stable series_key for a quarantine row that holds a single file (no usable series UID)."""
    return "file-" + hashlib.sha1(path.encode("utf-8", "surrogateescape")).hexdigest()[:20]


def file_row(path: str, why: str, nbytes: int = 0, **known: Any) -> dict[str, Any]:
    """A quarantine row for one file that could not be read as a usable CT slice."""
    row = {**CATALOG_DEFAULTS, **known}
    row.update(
        series_key=file_key(path),
        files=[path],
        slices=0,
        bytes=int(nbytes),
        status="quarantined",
        reason=why,
        spacing=[],
    )
    return row
