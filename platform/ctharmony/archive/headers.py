"""Header-only reading of one DICOM file into a flat record (never the pixel data).

``read_header`` parses only the tags the catalog needs (``HEADER_TAGS``, skipped over otherwise)
and stops at the pixel data element, then judges the file at header cost: what the object is (a
non-CT SOP class is named: "not a CT image: MR Image Storage"), a file cut short (in its header or
its pixel data), every invalid header value (``header_checks``: Rows, Columns, bits, samples, pixel
spacing, rescale slope...), for every transfer syntax, and the pixel data element without decoding it
(``pixel_element``: unknown transfer syntax, no decoder, wrong length or image size). A transient
read error (EIO, EAGAIN, ESTALE...) is retried before the file is called unreadable. The PatientID is
turned into a pseudonymous key at once and never leaves this function.

A record is a plain dict; ``record["error"]`` is the quarantine reason ("" when the file is usable).

Example::

    rec = read_header("IM00001.dcm", salt="s")
    rec["series_uid"], rec["position"], rec["error"]
    # -> ('1.2.826...', [-10.0, -12.0, 30.0], '')
"""

from __future__ import annotations

import errno
import math
import os
import struct
import time
from pathlib import Path
from typing import Any

from pydicom.datadict import tag_for_keyword

from ctharmony.archive import quarantine as q
from ctharmony.archive.header_checks import CT_STORAGE, ENHANCED_CT_STORAGE, header_problems, sop_class_reason
from ctharmony.archive.pixel_element import check_pixel_element, syntax_traits
from ctharmony.archive.pseudonym import patient_key
from ctharmony.archive.recon_tags import TAGS as RECON_TAGS
from ctharmony.archive.recon_tags import recon_info

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
    "ProtocolName",
    "Rows",
    "Columns",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "SliceThickness",
    "BitsAllocated",
    "SamplesPerPixel",
    "BitsStored",
    "PixelRepresentation",
    "PhotometricInterpretation",
    "RescaleSlope",
    "RescaleIntercept",
    "NumberOfFrames",
    "GantryDetectorTilt",
    "InstanceNumber",
)
IMAGE_STORAGE_CT = {CT_STORAGE, *ENHANCED_CT_STORAGE}
# errno values of a read that may succeed when tried again (network file systems, busy devices).
TRANSIENT_ERRNOS = frozenset({errno.EIO, errno.EAGAIN, errno.ESTALE, errno.EINTR, errno.ETIMEDOUT, errno.EBUSY})
READ_ATTEMPTS = 3
RETRY_BACKOFF_S = 0.05  # doubled after each failed attempt
_INT_KEYWORDS = ("Rows", "Columns", "BitsAllocated", "BitsStored", "SamplesPerPixel", "PixelRepresentation")
_TEXT_KEYWORDS = ("PhotometricInterpretation", "PixelSpacing", "RescaleSlope", "RescaleIntercept",
                  "ImagePositionPatient", "ImageOrientationPatient")
_TAGS = {keyword: tag_for_keyword(keyword) for keyword in HEADER_TAGS}
_SPECIFIC = [int(t) for t in _TAGS.values()] + list(RECON_TAGS)


def _raw_value(ds: Any, keyword: str) -> Any:
    """The element's value without pydicom's (slow) conversion: bytes for raw elements."""
    elem = ds._dict.get(_TAGS[keyword])  # what get_item returns, without its Tag() conversion (hot path)
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


def _uint16_or_none(ds: Any, keyword: str, little_endian: bool) -> int | None:
    """An unsigned short element's value, or None when it is absent, empty or too short."""
    value = _raw_value(ds, keyword)
    if value is None or (isinstance(value, bytes) and len(value) < 2):
        return None
    return _uint16(ds, keyword, little_endian)


def _header_values(ds: Any, record: dict[str, Any]) -> dict[str, Any]:
    """The values ``header_checks.header_problems`` judges, as stored (None when absent)."""
    little = syntax_traits(record["transfer_syntax"]).little_endian
    values: dict[str, Any] = {k: _uint16_or_none(ds, k, little) for k in _INT_KEYWORDS}
    values.update({k: None if _raw_value(ds, k) is None else _text(ds, k) for k in _TEXT_KEYWORDS})
    values.update(SOPClassUID=record["sop_class_uid"], Modality=record["modality"])
    return values


def _cut_in_header(ds: Any, fp: Any, size: int) -> bool:
    """Whether the file ends inside a header element (one read short, or one skipped past the end)."""
    if fp.tell() > size:
        return True
    for elem in ds._dict.values():  # the raw elements read (only the specific tags)
        value = getattr(elem, "value", None)
        if isinstance(value, bytes) and getattr(elem, "length", 0) not in (0xFFFFFFFF, len(value)):
            return True
    return False


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

    A transient OSError (``TRANSIENT_ERRNOS``) is retried ``READ_ATTEMPTS`` times in all, with a short
    backoff, before the file is quarantined as unreadable.

    Args:
        path: the file.
        salt: the pseudonym salt for the patient key.
        site: fallback site name when the file has no InstitutionName.
    """
    path = str(path)
    for attempt in range(1, READ_ATTEMPTS + 1):
        try:
            return _read_once(path, salt=salt, site=site)
        except OSError as err:
            if err.errno in TRANSIENT_ERRNOS and attempt < READ_ATTEMPTS:
                time.sleep(RETRY_BACKOFF_S * 2 ** (attempt - 1))
                continue
            why = err.strerror or type(err).__name__
            if attempt > 1:
                why += f" (tried {attempt} times)"
            try:
                nbytes = os.stat(path).st_size
            except OSError:
                nbytes = 0
            return {"path": path, "bytes": nbytes, "error": q.reason(q.UNREADABLE, why)}
    raise AssertionError("unreachable")  # pragma: no cover


def _read_once(path: str, *, salt: str, site: str) -> dict[str, Any]:
    """One attempt of ``read_header``; raises OSError (with an errno) on an I/O error."""
    record: dict[str, Any] = {"path": path, "bytes": 0, "error": ""}
    with open(path, "rb") as fp:
        size = os.fstat(fp.fileno()).st_size
        record["bytes"] = size
        try:
            ds, meta = _open_dataset(fp)
        except Exception as err:  # noqa: BLE001 - any parse failure is a quarantine reason
            if isinstance(err, OSError) and err.errno is not None:
                raise
            fp.seek(0)
            meta = _read_file_meta(fp)
            syntax = (meta or {}).get("TransferSyntaxUID", "")
            unknown = syntax and not syntax_traits(syntax).known
            record["error"] = _unknown_syntax(syntax) if unknown else _parse_error_reason(err, size)
            return record
        try:
            record.update(_fields(ds, meta, salt=salt, site=site))
            record["error"] = _judge(ds, fp, size, record)
        except OSError as err:
            if err.errno is not None:
                raise
            record["error"] = q.reason(q.NOT_DICOM, f"malformed header ({type(err).__name__}: {err})"[:300])
        except Exception as err:  # noqa: BLE001 - malformed values must quarantine, not crash
            record["error"] = q.reason(q.NOT_DICOM, f"malformed header ({type(err).__name__}: {err})"[:300])
    return record


def _unknown_syntax(syntax: str) -> str:
    return q.reason(q.UNDECODABLE, f"unknown transfer syntax {syntax!r} (not a DICOM transfer syntax)")


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
        "protocol_name": _text(ds, "ProtocolName", encoding),
        "recon_info": recon_info(ds),
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


def _judge(ds: Any, fp: Any, size: int, record: dict[str, Any]) -> str:
    """The file's quarantine reason ('' when it is a usable CT slice), most telling first."""
    if not syntax_traits(record["transfer_syntax"]).known:  # nothing parsed under it can be trusted
        return _unknown_syntax(record["transfer_syntax"])
    if _cut_in_header(ds, fp, size):
        return q.reason(q.TRUNCATED, f"the file ends inside its header (after {size} bytes)")
    not_ct = sop_class_reason(record["sop_class_uid"], record["modality"])
    if not_ct:
        return not_ct
    problems = header_problems(_header_values(ds, record))
    if syntax_traits(record["transfer_syntax"]).deflated:
        pixels = _check_deflated(fp, record) if not problems else ""
    else:
        pixels = check_pixel_element(fp, size, record)
    missing = [p for p in problems if "missing" in p]
    if q.category(pixels) == q.NO_PIXELS and missing:  # ends before the pixels, and header values are missing
        return q.reason(q.TRUNCATED, f"the file ends after {size} bytes, before its pixel data "
                                     f"({'; '.join(missing[:3])})")
    if record["frames"] > 1:
        return q.reason(q.MULTIFRAME, f"{record['frames']} frames in one file (multi-frame CT is not read)")
    if "LOCALIZER" in record["image_type"]:
        return q.reason(q.LOCALIZER, f"ImageType {record['image_type']}")
    if problems:
        return q.reason(q.INVALID_HEADER, "; ".join(problems))
    return pixels


def _check_deflated(fp: Any, record: dict[str, Any]) -> str:
    """Pixel data of a deflated file: the whole (compressed) dataset has to be inflated to reach it."""
    import pydicom

    fp.seek(0)
    ds = pydicom.dcmread(fp, force=True)
    elem = ds.get_item(0x7FE00010)
    if elem is None:
        return q.reason(q.NO_PIXELS, "the deflated dataset holds no pixel data element")
    expected = record["rows"] * record["columns"] * record["frames"] * record["samples"] * record["bits"] // 8
    if len(elem.value or b"") < expected:
        return q.reason(q.UNDECODABLE, f"pixel data holds {len(elem.value or b'')} bytes, the image needs {expected}")
    return ""
