"""Mutations of DICOM files for the header and fuzz tests (not a test module).

Value edits go through pydicom (``mutate``); what pydicom refuses to write (an invalid transfer
syntax UID, pixel data that does not match its transfer syntax) is patched in the bytes
(``set_transfer_syntax``). Test modules import it as ``from testkit import dicom_mutations``
(``tests/`` is on pytest's ``pythonpath``).

Example:
    >>> mutate(src, dst, Rows=0, PixelSpacing=None)  # doctest: +SKIP
"""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import pydicom

_META_TS = b"\x02\x00\x10\x00UI"
_META_GROUP_LENGTH = b"\x02\x00\x00\x00UL\x04\x00"


def mutate(src: Path, dst: Path, meta: dict | None = None, **changes) -> Path:
    """Copy ``src`` to ``dst`` with dataset keywords changed (None deletes one) and file meta changed."""
    ds = pydicom.dcmread(src)
    for keyword, value in changes.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    for keyword, value in (meta or {}).items():
        if value is None:
            if keyword in ds.file_meta:
                delattr(ds.file_meta, keyword)
        else:
            setattr(ds.file_meta, keyword, value)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid values on purpose (DS 'nan', ...)
        ds.save_as(dst)
    return dst


def set_transfer_syntax(src: Path, dst: Path, uid: str) -> Path:
    """Copy ``src`` with its file meta TransferSyntaxUID replaced in the bytes (lengths fixed up)."""
    data = bytearray(src.read_bytes())
    at = data.index(_META_TS, 132)
    old_length = struct.unpack("<H", data[at + 6 : at + 8])[0]
    value = uid.encode("ascii")
    value += b"\x00" * (len(value) % 2)
    data[at + 6 : at + 8 + old_length] = struct.pack("<H", len(value)) + value
    group = data.index(_META_GROUP_LENGTH, 132) + len(_META_GROUP_LENGTH)
    total = struct.unpack("<L", data[group : group + 4])[0] + len(value) - old_length
    data[group : group + 4] = struct.pack("<L", total)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(bytes(data))
    return dst


def flip_bit(src: Path, dst: Path, needle: bytes, index: int, bit: int, *, start: int = 0) -> Path:
    """Copy ``src`` with one bit flipped: bit ``bit`` of byte ``index`` of the first ``needle`` after ``start``."""
    data = bytearray(src.read_bytes())
    at = data.index(needle, start) + index
    data[at] ^= 1 << bit
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(bytes(data))
    return dst


def element_value_offset(path: Path, tag: tuple[int, int]) -> tuple[int, int]:
    """(offset, length) of the value of the top-level element ``tag`` in the file (as pydicom parsed it)."""
    if tag[0] == 0x0002:  # file meta: always explicit VR little endian, 'UI' after the tag
        data = path.read_bytes()
        at = data.index(struct.pack("<HH", *tag) + b"UI", 132)
        return at + 8, struct.unpack("<H", data[at + 6 : at + 8])[0]
    raw = pydicom.dcmread(path, stop_before_pixels=True).get_item(tag)
    return raw.value_tell, raw.length
