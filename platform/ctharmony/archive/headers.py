"""Header-only reading of one DICOM file into a flat record (never the pixel data).

``read_header`` parses only the tags the catalog needs (``HEADER_TAGS``, skipped over otherwise)
and stops at the pixel data element, then checks that element's declared length against the file's
size without reading it: a truncated file, a missing or short pixel data element or a transfer
syntax without an installed decoder is caught here, at header cost. The PatientID is turned into a
pseudonymous key at once and never leaves this function.

A record is a plain dict; ``record["error"]`` is the quarantine reason ("" when the file is usable).

Example:
    >>> rec = read_header("IM00001.dcm", salt="s")  # doctest: +SKIP
    >>> rec["series_uid"], rec["position"], rec["error"]  # doctest: +SKIP
    ('1.2.826...', [-10.0, -12.0, 30.0], '')
"""

from __future__ import annotations

import functools
import math
import os
import struct
from pathlib import Path
from typing import Any

from pydicom.datadict import tag_for_keyword

from ctharmony.archive import quarantine as q
from ctharmony.archive.pseudonym import patient_key

HEADER_TAGS = (
    "SpecificCharacterSet",
    "SOPClassUID",
    "SOPInstanceUID",
    "Modality",
    "PatientID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "FrameOfReferenceUID",
    "InstitutionName",
    "Manufacturer",
    "ManufacturerModelName",
    "ConvolutionKernel",
    "KVP",
    "ImageType",
    "SeriesDescription",
    "Rows",
    "Columns",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "SliceThickness",
    "BitsAllocated",
    "SamplesPerPixel",
    "NumberOfFrames",
    "GantryDetectorTilt",
    "InstanceNumber",
)
IMAGE_STORAGE_CT = {"1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1"}  # CT, Enhanced CT
_SEQ_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_TAGS = {keyword: tag_for_keyword(keyword) for keyword in HEADER_TAGS}
_SPECIFIC = [int(t) for t in _TAGS.values()]


def _raw_value(ds: Any, keyword: str) -> Any:
    """The element's value without pydicom's (slow) conversion: bytes for raw elements."""
    elem = ds.get_item(_TAGS[keyword])
    return None if elem is None else elem.value


def _encoding(ds: Any) -> str:
    charset = _raw_value(ds, "SpecificCharacterSet")
    if isinstance(charset, bytes) and b"192" in charset:
        return "utf-8"
    return "latin-1"


def _text(ds: Any, keyword: str, encoding: str = "latin-1") -> str:
    value = _raw_value(ds, keyword)
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode(encoding, "replace").strip(" \x00")
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _floats(ds: Any, keyword: str) -> list[float]:
    text = _text(ds, keyword)
    if not text:
        return []
    try:
        return [float(v) for v in text.split("\\")]
    except ValueError:
        return []


def _number(ds: Any, keyword: str, default: float = math.nan) -> float:
    values = _floats(ds, keyword)
    return values[0] if values else default


def _uint16(ds: Any, keyword: str, little_endian: bool, default: int = 0) -> int:
    value = _raw_value(ds, keyword)
    if value is None or value == b"":
        return default
    if isinstance(value, bytes):
        return struct.unpack("<H" if little_endian else ">H", value[:2])[0] if len(value) >= 2 else default
    return int(value)


@functools.cache
def syntax_traits(transfer_syntax: str) -> tuple[bool, bool, bool]:
    """(little endian, implicit VR, a pixel decoder is installed) for a transfer syntax UID."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import UID

    uid = UID(transfer_syntax)
    if not uid.is_transfer_syntax:
        return True, False, False
    decodable = True
    if uid.is_compressed:
        try:
            decodable = bool(get_decoder(uid).is_available)
        except (NotImplementedError, ValueError):
            decodable = False
    return uid.is_little_endian, uid.is_implicit_VR, decodable


def _check_pixel_data(fp: Any, size: int, record: dict[str, Any]) -> str:
    """The quarantine reason found at the pixel data element ('' when it looks complete)."""
    syntax = record["transfer_syntax"]
    little, implicit, decodable = syntax_traits(syntax)
    start = fp.tell()
    head = fp.read(12)
    if len(head) < 8:
        return q.reason(q.NO_PIXELS, "the file ends before any pixel data element")
    endian = "<" if little else ">"
    group, element = struct.unpack(endian + "HH", head[:4])
    if (group, element) != (0x7FE0, 0x0010):
        return q.reason(q.NO_PIXELS, f"found ({group:04X},{element:04X}) where pixel data was expected")
    if implicit:
        length, offset = struct.unpack(endian + "L", head[4:8])[0], 8
    elif head[4:6] in (b"OB", b"OW", b"OF", b"UN", b"OD", b"OL", b"OV"):
        if len(head) < 12:
            return q.reason(q.TRUNCATED, "the file ends inside the pixel data element's header")
        length, offset = struct.unpack(endian + "L", head[8:12])[0], 12
    else:
        length, offset = struct.unpack(endian + "H", head[6:8])[0], 8
    remaining = size - start - offset
    if length == 0xFFFFFFFF:  # encapsulated (compressed) fragments: must end with a sequence delimiter
        fp.seek(max(size - 8, 0))
        if fp.read(8) != _SEQ_DELIMITER:
            return q.reason(q.TRUNCATED, "compressed pixel data has no end marker (file cut short?)")
        if not decodable:
            return q.reason(q.UNDECODABLE, f"no decoder installed for transfer syntax {syntax}")
        return ""
    if length > remaining:
        return q.reason(q.TRUNCATED, f"pixel data needs {length} bytes, {max(remaining, 0)} remain")
    expected = record["rows"] * record["columns"] * record["frames"] * record["samples"] * record["bits"] // 8
    if length < expected or expected == 0:
        what = f"{record['rows']}x{record['columns']}x{record['bits']} bit"
        return q.reason(q.UNDECODABLE, f"pixel data holds {length} bytes, a {what} image needs {expected}")
    return ""


_META_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UT", b"UN", b"UC", b"UR", b"SV", b"UV"}
_META_KEYS = {0x0002: "MediaStorageSOPClassUID", 0x0003: "MediaStorageSOPInstanceUID", 0x0010: "TransferSyntaxUID"}
_FAST_SYNTAXES_IMPLICIT = {"1.2.840.10008.1.2"}
_SLOW_SYNTAXES = {"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2"}  # deflated, big endian: pydicom handles them


_PIXEL_TAGS = frozenset((0x7FE00010, 0x7FE00009, 0x7FE00008))


def _stop_at_pixels(tag: int, vr: str | None, length: int) -> bool:
    return int(tag) in _PIXEL_TAGS  # int(): BaseTag's own __eq__ is slow


def _read_file_meta(fp: Any) -> dict[str, str] | None:
    """The few file meta (group 0002) values we need, parsed directly; None when pydicom must do it."""
    head = fp.read(132)
    if len(head) < 132 or head[128:] != b"DICM":
        return None
    meta: dict[str, str] = {}
    while True:
        element = fp.read(8)
        if len(element) < 8:
            return None
        group, number, vr = struct.unpack("<HH2s", element[:6])
        if group != 2:
            fp.seek(-8, os.SEEK_CUR)
            break
        if vr in _META_LONG_VRS:
            extra = fp.read(4)
            if len(extra) < 4:
                return None
            length = struct.unpack("<L", extra)[0]
        else:
            length = struct.unpack("<H", element[6:8])[0]
        if length == 0xFFFFFFFF or length > 1 << 16:
            return None
        value = fp.read(length)
        if number in _META_KEYS:
            meta[_META_KEYS[number]] = value.decode("ascii", "replace").strip(" \x00")
    syntax = meta.get("TransferSyntaxUID", "")
    if not syntax or syntax in _SLOW_SYNTAXES:
        return None
    return meta


def _open_dataset(fp: Any) -> tuple[Any, dict[str, str]]:
    """The header dataset (stopped before the pixel data) and the file meta values we need."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.filereader import read_dataset

    meta = _read_file_meta(fp)
    if meta is not None:  # fast path: pydicom parses only the dataset, we did the file meta
        implicit = meta["TransferSyntaxUID"] in _FAST_SYNTAXES_IMPLICIT
        ds = read_dataset(fp, implicit, True, stop_when=_stop_at_pixels, specific_tags=_SPECIFIC)
        return ds, meta
    fp.seek(0)
    try:
        ds = pydicom.dcmread(fp, stop_before_pixels=True, specific_tags=_SPECIFIC)
    except InvalidDicomError:
        # No 128-byte preamble + "DICM": old files may still be raw DICOM; accept only plausible ones.
        fp.seek(0)
        ds = pydicom.dcmread(fp, stop_before_pixels=True, specific_tags=_SPECIFIC, force=True)
        if not (_text(ds, "SOPClassUID") and _text(ds, "Modality")):
            raise
    file_meta = getattr(ds, "file_meta", None) or {}
    return ds, {key: str(file_meta.get(key, "") or "") for key in _META_KEYS.values()}


def read_header(path: str | Path, *, salt: str, site: str = "") -> dict[str, Any]:
    """Read the catalog's tags of one file (header only) into a flat record; never raises on bad input.

    Args:
        path: the file.
        salt: the pseudonym salt for the patient key.
        site: fallback site name when the file has no InstitutionName.
    """
    path = str(path)
    record: dict[str, Any] = {"path": path, "bytes": 0, "error": ""}
    try:
        with open(path, "rb") as fp:
            size = os.fstat(fp.fileno()).st_size
            record["bytes"] = size
            try:
                ds, meta = _open_dataset(fp)
            except Exception as err:  # noqa: BLE001 - any parse failure is a quarantine reason
                record["error"] = _parse_error_reason(err, size)
                return record
            record.update(_fields(ds, meta, salt=salt, site=site))
            record["error"] = _classify(record) or _check_pixel_data(fp, size, record)
    except OSError as err:
        record["error"] = q.reason(q.UNREADABLE, err.strerror or type(err).__name__)
    except Exception as err:  # noqa: BLE001 - malformed values must quarantine, not crash
        record["error"] = q.reason(q.NOT_DICOM, f"malformed header ({type(err).__name__}: {err})"[:300])
    return record


def _parse_error_reason(err: Exception, size: int) -> str:
    from pydicom.errors import InvalidDicomError

    if size == 0:
        return q.reason(q.NOT_DICOM, "empty file")
    if isinstance(err, InvalidDicomError):
        return q.reason(q.NOT_DICOM, "no DICOM preamble/DICM marker and no readable DICOM header")
    if isinstance(err, EOFError | struct.error):
        return q.reason(q.TRUNCATED, "the file ends inside its header")
    return q.reason(q.NOT_DICOM, f"header could not be parsed ({type(err).__name__})")


def _fields(ds: Any, meta: dict[str, str], *, salt: str, site: str) -> dict[str, Any]:
    syntax = meta.get("TransferSyntaxUID") or "1.2.840.10008.1.2"  # no file meta: implicit VR little endian
    little = syntax_traits(syntax)[0]
    encoding = _encoding(ds)
    study_uid = _text(ds, "StudyInstanceUID")
    sop_class = _text(ds, "SOPClassUID") or meta.get("MediaStorageSOPClassUID", "")
    sop_uid = _text(ds, "SOPInstanceUID") or meta.get("MediaStorageSOPInstanceUID", "")
    return {
        "transfer_syntax": syntax,
        "sop_class_uid": sop_class,
        "sop_uid": sop_uid,
        "modality": _text(ds, "Modality").upper(),
        "patient_key": patient_key(_text(ds, "PatientID", encoding), salt=salt, study_uid=study_uid),
        "study_uid": study_uid,
        "series_uid": _text(ds, "SeriesInstanceUID"),
        "frame_of_reference_uid": _text(ds, "FrameOfReferenceUID"),
        "site": _text(ds, "InstitutionName", encoding) or site,
        "manufacturer": _text(ds, "Manufacturer", encoding),
        "model": _text(ds, "ManufacturerModelName", encoding),
        "kernel": _text(ds, "ConvolutionKernel", encoding),
        "kvp": _number(ds, "KVP"),
        "image_type": _text(ds, "ImageType").upper(),
        "series_description": _text(ds, "SeriesDescription", encoding),
        "rows": _uint16(ds, "Rows", little),
        "columns": _uint16(ds, "Columns", little),
        "bits": _uint16(ds, "BitsAllocated", little, 16),
        "samples": _uint16(ds, "SamplesPerPixel", little, 1),
        "position": _floats(ds, "ImagePositionPatient"),
        "orientation": _floats(ds, "ImageOrientationPatient"),
        "pixel_spacing": _floats(ds, "PixelSpacing"),
        "slice_thickness": _number(ds, "SliceThickness"),
        "frames": int(_number(ds, "NumberOfFrames", 1.0) or 1),
        "gantry_tilt": _number(ds, "GantryDetectorTilt", 0.0),
        "instance": int(_number(ds, "InstanceNumber", 0.0)),
    }


def _classify(record: dict[str, Any]) -> str:
    """File-level reasons visible in the header ('' when none)."""
    sop_class = record["sop_class_uid"]
    if sop_class == "1.2.840.10008.1.3.10":
        return q.reason(q.NOT_CT, "DICOMDIR (a directory index, not an image)")
    if record["modality"] != "CT" or (sop_class and sop_class not in IMAGE_STORAGE_CT):
        what = f"modality {record['modality'] or 'missing'}"
        return q.reason(q.NOT_CT, f"{what}, SOP class {sop_class or 'missing'}")
    if record["frames"] > 1:
        return q.reason(q.MULTIFRAME, f"{record['frames']} frames in one file (enhanced CT is not read)")
    if "LOCALIZER" in record["image_type"]:
        return q.reason(q.LOCALIZER, f"ImageType {record['image_type']}")
    return ""
