"""Rules a CT slice's header must pass, in words a radiology user understands.

``read_header`` extracts the values; the functions here judge them. They are pure (no file access),
so every rule is tested on plain values:

- ``sop_class_reason``: what a non-CT object is ("not a CT image: RT Structure Set Storage (contours)"),
  using pydicom's names of the SOP classes.
- ``header_problems``: the image-pixel description (Rows, Columns, BitsAllocated/Stored,
  SamplesPerPixel, PixelRepresentation, PhotometricInterpretation), PixelSpacing, RescaleSlope /
  Intercept and the geometry values when present; every problem is listed, not just the first.

Example:
    >>> sop_class_reason("1.2.840.10008.5.1.4.1.1.4", "MR")
    'not a CT image: MR Image Storage'
    >>> values = {"SOPClassUID": CT_STORAGE, "Modality": "CT", "Rows": 0, "Columns": 512, "BitsAllocated": 16,
    ...           "BitsStored": 12, "SamplesPerPixel": 1, "PixelRepresentation": 0,
    ...           "PhotometricInterpretation": "MONOCHROME2", "PixelSpacing": "0.7\\\\0.7", "RescaleSlope": "0"}
    >>> header_problems(values)
    ['Rows is 0', 'RescaleSlope is 0 (every pixel would have the same HU)']
"""

from __future__ import annotations

import math
from typing import Any

from ctharmony.archive import quarantine as q

CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_STORAGE = {"1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.2.2"}  # Enhanced, Legacy Converted
DICOMDIR = "1.2.840.10008.1.3.10"
BITS_ALLOCATED = (8, 16, 32)
GREY = ("MONOCHROME1", "MONOCHROME2")
# What an object of a SOP class (or of its sub-classes, "<uid>.x") is, for people who do not know the names.
_WHAT_IT_IS = {
    "1.2.840.10008.5.1.4.1.1.7": "a screenshot or scanned image",
    "1.2.840.10008.5.1.4.1.1.481.3": "contours",
    "1.2.840.10008.5.1.4.1.1.88": "a structured report",
    "1.2.840.10008.5.1.4.1.1.104": "an encapsulated document",
    "1.2.840.10008.5.1.4.1.1.11": "display settings for other images",
}
SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"


def sop_class_name(uid: str) -> str:
    """pydicom's name of a SOP class, or the UID itself with a note when it is not a standard one."""
    from pydicom.uid import UID

    name = UID(uid).name
    return name if name != uid else f"SOP class {uid} (not a standard storage class)"


def sop_class_reason(sop_class: str, modality: str) -> str:
    """The NOT_CT / MULTIFRAME reason for a file whose SOP class or Modality is not CT ('' when it is CT).

    A missing SOP class with Modality CT, or a CT SOP class with another Modality, is not judged here
    (``header_problems`` reports the contradiction): only positive evidence makes a file "not CT".
    """
    if sop_class == DICOMDIR:
        return q.reason(q.NOT_CT, "DICOMDIR (a directory index, not an image)")
    if sop_class in ENHANCED_CT_STORAGE:
        return q.reason(q.MULTIFRAME, f"{sop_class_name(sop_class)} (enhanced, multi-frame CT is not read)")
    if sop_class and sop_class != CT_STORAGE:
        what = sop_class_name(sop_class)
        if sop_class == SEG_STORAGE:
            return q.reason(q.NOT_CT, f"DICOM SEG ({what})")
        note = next((text for uid, text in _WHAT_IT_IS.items() if f"{sop_class}.".startswith(f"{uid}.")), "")
        return q.reason(q.NOT_CT, f"{what} ({note})" if note else what)
    if not sop_class and modality and modality != "CT":
        return q.reason(q.NOT_CT, f"Modality {modality} (no SOP Class UID)")
    return ""


def _numbers(text: Any) -> list[float] | None:
    """Backslash-separated decimals as floats; [] when empty, None when not numeric."""
    if text is None:
        return []
    text = str(text).strip(" \x00")
    if not text:
        return []
    try:
        return [float(v) for v in text.split("\\")]
    except ValueError:
        return None


def _pixel_description(values: dict[str, Any]) -> list[str]:
    problems = []
    for keyword in ("Rows", "Columns"):
        size = values.get(keyword)
        if size is None:
            problems.append(f"{keyword} missing")
        elif size <= 0:
            problems.append(f"{keyword} is 0")
    allocated, stored = values.get("BitsAllocated"), values.get("BitsStored")
    if allocated is None:
        problems.append("BitsAllocated missing")
    elif allocated not in BITS_ALLOCATED:
        problems.append(f"BitsAllocated is {allocated} (a CT image uses 8, 16 or 32)")
    if stored is None:
        problems.append("BitsStored missing")
    elif not 1 <= stored <= (allocated if allocated in BITS_ALLOCATED else max(BITS_ALLOCATED)):
        problems.append(f"BitsStored is {stored}, which does not fit BitsAllocated {allocated}")
    samples = values.get("SamplesPerPixel")
    if samples is None:
        problems.append("SamplesPerPixel missing")
    elif samples != 1:
        problems.append(f"SamplesPerPixel is {samples} (a CT image is greyscale: 1)")
    if values.get("PixelRepresentation") not in (0, 1):
        shown = values.get("PixelRepresentation")
        problems.append("PixelRepresentation missing" if shown is None else f"PixelRepresentation is {shown}")
    photometric = str(values.get("PhotometricInterpretation") or "").strip(" \x00").upper()
    if photometric not in GREY:
        problems.append(f"PhotometricInterpretation is {photometric or 'missing'} (a CT image is MONOCHROME2)")
    return problems


def _spacing_and_rescale(values: dict[str, Any]) -> list[str]:
    problems = []
    spacing = _numbers(values.get("PixelSpacing"))
    if spacing is None:
        problems.append(f"PixelSpacing {values.get('PixelSpacing')!r} is not numeric")
    elif not spacing:
        problems.append("PixelSpacing missing (the pixel size in mm is unknown)")
    elif len(spacing) != 2:
        problems.append(f"PixelSpacing has {len(spacing)} value(s), needs 2")
    elif not all(math.isfinite(v) and v > 0 for v in spacing):
        shown = "\\".join(f"{v:g}" for v in spacing)
        problems.append(f"PixelSpacing is {shown} (needs two positive numbers)")
    slope = _numbers(values.get("RescaleSlope"))  # missing or empty: the default 1
    if slope is None or len(slope) > 1 or (slope and not math.isfinite(slope[0])):
        problems.append(f"RescaleSlope {values.get('RescaleSlope')!r} is not a number")
    elif slope and slope[0] == 0:
        problems.append("RescaleSlope is 0 (every pixel would have the same HU)")
    intercept = _numbers(values.get("RescaleIntercept"))
    if intercept is None or len(intercept) > 1 or (intercept and not math.isfinite(intercept[0])):
        problems.append(f"RescaleIntercept {values.get('RescaleIntercept')!r} is not a number")
    return problems


def _geometry(values: dict[str, Any]) -> list[str]:
    """Position / orientation when present (a slice without them is the series grouping's business)."""
    problems = []
    for keyword, count in (("ImagePositionPatient", 3), ("ImageOrientationPatient", 6)):
        numbers = _numbers(values.get(keyword))
        if numbers is None or (numbers and (len(numbers) != count or not all(map(math.isfinite, numbers)))):
            problems.append(f"{keyword} {values.get(keyword)!r} is not {count} finite numbers")
        elif numbers and keyword == "ImageOrientationPatient":
            row, column = numbers[:3], numbers[3:]
            norms = [math.sqrt(sum(v * v for v in vec)) for vec in (row, column)]
            dot = sum(a * b for a, b in zip(row, column, strict=True))
            if any(abs(n - 1.0) > 0.01 for n in norms) or abs(dot) > 0.01:
                problems.append("ImageOrientationPatient is not two perpendicular unit vectors")
    return problems


def header_problems(values: dict[str, Any]) -> list[str]:
    """Every problem of a CT slice's header values ([] when usable).

    Args:
        values: DICOM keyword -> value: ints (None when missing) for Rows, Columns, BitsAllocated,
            BitsStored, SamplesPerPixel, PixelRepresentation; the stored text (None when missing)
            for the others (PixelSpacing, RescaleSlope, ImagePositionPatient... as "a\\\\b").
    """
    problems = _pixel_description(values) + _spacing_and_rescale(values) + _geometry(values)
    sop_class, modality = values.get("SOPClassUID") or "", values.get("Modality") or ""
    if not sop_class:
        problems.insert(0, "SOP Class UID missing (what kind of object this is is unknown)")
    if not modality:
        problems.insert(0, "Modality missing")
    elif sop_class == CT_STORAGE and modality != "CT":
        problems.insert(0, f"Modality is {modality} in a CT Image Storage file")
    return problems
