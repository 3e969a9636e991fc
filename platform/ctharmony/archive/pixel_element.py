"""The pixel data element of a DICOM file, judged without decoding it (a few bytes read, at most).

Called with the file positioned just after the header (where ``headers`` stopped parsing), this
checks what can go wrong before a decoder ever runs: the element is absent or cut short, the
transfer syntax is not a DICOM transfer syntax or has no installed decoder, compressed
(encapsulated) data sits under an uncompressed transfer syntax or the reverse, native data is
shorter than Rows x Columns x BitsAllocated needs, and a compressed frame's own header (JPEG 2000
SIZ / JP2 ihdr, JPEG and JPEG-LS SOF) declares another image size than Rows x Columns.

Example:
    >>> syntax_traits("1.2.840.10008.1.2.4.90").encapsulated
    True
    >>> codestream_size(bytes.fromhex("ffd8ffc3000b10020002000101"))
    ('JPEG', 512, 512, 1)
"""

from __future__ import annotations

import functools
import struct
from typing import Any, NamedTuple

from ctharmony.archive import quarantine as q

SEQ_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_ITEM = b"\xfe\xff\x00\xe0"
_LONG_VRS = (b"OB", b"OW", b"OF", b"UN", b"OD", b"OL", b"OV")
_SOF_MARKERS = frozenset((0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7))
CODESTREAM_HEAD_BYTES = 2048  # enough for a JPEG's tables before its SOF marker


class SyntaxTraits(NamedTuple):
    """What a transfer syntax UID means for reading the file."""

    little_endian: bool
    implicit_vr: bool
    decodable: bool  # a pixel decoder is installed (always True when uncompressed)
    known: bool  # a DICOM transfer syntax that pydicom knows
    encapsulated: bool  # pixel data stored as compressed fragments
    deflated: bool  # the whole dataset is zlib-compressed


@functools.cache
def syntax_traits(transfer_syntax: str) -> SyntaxTraits:
    """The traits of a transfer syntax UID (an unknown UID: explicit VR little endian, not decodable)."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import UID

    uid = UID(transfer_syntax)
    if not uid.is_transfer_syntax:
        return SyntaxTraits(True, False, False, False, False, False)
    decodable = True
    if uid.is_compressed and uid.is_encapsulated:
        try:
            decodable = bool(get_decoder(uid).is_available)
        except (NotImplementedError, ValueError):
            decodable = False
    return SyntaxTraits(uid.is_little_endian, uid.is_implicit_VR, decodable, True, uid.is_encapsulated,
                        uid.is_deflated)


def syntax_label(transfer_syntax: str) -> str:
    """'JPEG 2000 Image Compression (Lossless Only) (1.2.840.10008.1.2.4.90)', or the UID alone."""
    from pydicom.uid import UID

    name = UID(transfer_syntax).name
    return f"{name} ({transfer_syntax})" if name != transfer_syntax else transfer_syntax


def codestream_size(head: bytes) -> tuple[str, int, int, int] | None:
    """(format, rows, columns, components) declared at the start of a compressed frame, or None.

    Understands a raw JPEG 2000 codestream (SIZ), a JP2 file (ihdr box) and JPEG / JPEG-LS (SOFn).
    """
    if head[:4] == b"\xff\x4f\xff\x51" and len(head) >= 42:
        xsiz, ysiz, xosiz, yosiz = struct.unpack(">4L", head[8:24])
        return "JPEG 2000", ysiz - yosiz, xsiz - xosiz, struct.unpack(">H", head[40:42])[0]
    if head[4:8] == b"jP  ":
        at = head.find(b"ihdr")
        if at < 0 or len(head) < at + 14:
            return None
        rows, columns, components = struct.unpack(">LLH", head[at + 4 : at + 14])
        return "JPEG 2000", rows, columns, components
    if head[:2] != b"\xff\xd8":
        return None
    at = 2
    while at + 4 <= len(head) and head[at] == 0xFF:
        if head[at + 1] in _SOF_MARKERS:
            if at + 10 > len(head):
                return None
            rows, columns, components = struct.unpack(">HHB", head[at + 5 : at + 10])
            return ("JPEG-LS" if head[at + 1] == 0xF7 else "JPEG"), rows, columns, components
        at += 2 + struct.unpack(">H", head[at + 2 : at + 4])[0]
    return None


def _first_fragment(fp: Any) -> bytes | None:
    """The first bytes of the first compressed fragment (after the basic offset table); None if malformed."""
    table = fp.read(8)
    if len(table) < 8 or table[:4] != _ITEM:
        return None
    fp.seek(struct.unpack("<L", table[4:])[0], 1)
    item = fp.read(8)
    if len(item) < 8 or item[:4] != _ITEM:
        return None
    return fp.read(min(struct.unpack("<L", item[4:])[0], CODESTREAM_HEAD_BYTES))


def _check_encapsulated(fp: Any, size: int, syntax: str, traits: SyntaxTraits, record: dict[str, Any]) -> str:
    if not traits.encapsulated:
        return q.reason(q.UNDECODABLE, f"compressed (encapsulated) pixel data under the uncompressed transfer "
                                       f"syntax {syntax_label(syntax)}")
    start = fp.tell()
    fp.seek(max(size - 8, 0))
    if fp.read(8) != SEQ_DELIMITER:
        return q.reason(q.TRUNCATED, "compressed pixel data has no end marker (file cut short?)")
    if not traits.decodable:
        return q.reason(q.UNDECODABLE, f"no decoder installed for transfer syntax {syntax_label(syntax)}")
    fp.seek(start)
    head = _first_fragment(fp)
    if head is None:
        return q.reason(q.UNDECODABLE, "compressed pixel data holds no fragment items (malformed encapsulation)")
    declared = codestream_size(head)
    if declared is None:
        return ""
    kind, rows, columns, components = declared
    if (rows, columns) != (record["rows"], record["columns"]):
        return q.reason(q.UNDECODABLE, f"the {kind} image inside is {rows} x {columns} pixels, the header says "
                                       f"Rows {record['rows']} x Columns {record['columns']}")
    if components != record["samples"]:
        return q.reason(q.UNDECODABLE, f"the {kind} image inside has {components} component(s), the header "
                                       f"says SamplesPerPixel {record['samples']}")
    return ""


def check_pixel_element(fp: Any, size: int, record: dict[str, Any]) -> str:
    """The quarantine reason found at the pixel data element ('' when it looks complete and decodable).

    Args:
        fp: the open file, positioned where the header parse stopped.
        size: the file's size in bytes.
        record: the header record (``transfer_syntax``, ``rows``, ``columns``, ``bits``, ``samples``, ``frames``).
    """
    syntax = record["transfer_syntax"]
    traits = syntax_traits(syntax)
    if not traits.known:
        return q.reason(q.UNDECODABLE, f"unknown transfer syntax {syntax!r} (not a DICOM transfer syntax)")
    start = fp.tell()
    head = fp.read(12)
    if len(head) < 8:
        return q.reason(q.NO_PIXELS, "the file ends before any pixel data element (cut short or saved without)")
    endian = "<" if traits.little_endian else ">"
    group, element = struct.unpack(endian + "HH", head[:4])
    if (group, element) != (0x7FE0, 0x0010):
        return q.reason(q.NO_PIXELS, f"found ({group:04X},{element:04X}) where pixel data was expected")
    if traits.implicit_vr:
        length, offset = struct.unpack(endian + "L", head[4:8])[0], 8
    elif head[4:6] in _LONG_VRS:
        if len(head) < 12:
            return q.reason(q.TRUNCATED, "the file ends inside the pixel data element's header")
        length, offset = struct.unpack(endian + "L", head[8:12])[0], 12
    else:
        length, offset = struct.unpack(endian + "H", head[6:8])[0], 8
    fp.seek(start + offset)
    if length == 0xFFFFFFFF:
        return _check_encapsulated(fp, size, syntax, traits, record)
    if traits.encapsulated:
        return q.reason(q.UNDECODABLE, f"uncompressed pixel data under the compressed transfer syntax "
                                       f"{syntax_label(syntax)}")
    remaining = size - start - offset
    if length > remaining:
        return q.reason(q.TRUNCATED, f"pixel data needs {length} bytes, {max(remaining, 0)} remain")
    expected = record["rows"] * record["columns"] * record["frames"] * record["samples"] * record["bits"] // 8
    if length < expected or expected == 0:
        what = f"{record['rows']}x{record['columns']}x{record['bits']} bit"
        return q.reason(q.UNDECODABLE, f"pixel data holds {length} bytes, a {what} image needs {expected}")
    return ""
