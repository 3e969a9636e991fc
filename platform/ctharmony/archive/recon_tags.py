"""Reconstruction markers from standard and vendor-private tags, as one text the protocol rules can read.

Most scanners name the reconstruction only in SeriesDescription or ConvolutionKernel; some also say it
in tags. This module reads those few tags from a header dataset (raw elements, no pixel data) and
renders them as ``key=value`` pairs joined by ``"; "`` (the catalog's ``recon_info`` column):

* ``algorithm``: ReconstructionAlgorithm (0018,9315), e.g. ``FILTER_BACK_PROJ`` or ``ITERATIVE``;
* ``iterative_method``: IterativeReconstructionMethod (0018,9769);
* ``ge_iterative``: GE's private block ``GEHC_CT_ADVAPP_001`` (0053,xx40-43: iterative recon
  annotation, mode, configuration, level), the non-empty values joined by ``/``;
* ``philips_idose``: Philips' private ``ELSCINT1`` (01F7,xx9B) iDose level.

Private elements are found through their private creator, in blocks 0x10-0x12.

Example:
    >>> from pydicom import Dataset
    >>> ds = Dataset()
    >>> ds.ReconstructionAlgorithm = "ITERATIVE"
    >>> recon_info(ds)
    'algorithm=ITERATIVE'
"""

from __future__ import annotations

from typing import Any

_ALGORITHM = 0x00189315
_ITERATIVE_METHOD = 0x00189769
_BLOCKS = (0x10, 0x11, 0x12)
_GE_GROUP, _GE_CREATOR, _GE_ELEMENTS = 0x0053, "GEHC_CT_ADVAPP_001", (0x40, 0x41, 0x42, 0x43)
_PHILIPS_GROUP, _PHILIPS_CREATOR, _PHILIPS_IDOSE = 0x01F7, "ELSCINT1", 0x9B


def _private(group: int, block: int, element: int) -> int:
    return (group << 16) | (block << 8) | element


TAGS: tuple[int, ...] = (
    _ALGORITHM,
    _ITERATIVE_METHOD,
    *[(group << 16) | block for group in (_GE_GROUP, _PHILIPS_GROUP) for block in _BLOCKS],
    *[_private(_GE_GROUP, b, e) for b in _BLOCKS for e in _GE_ELEMENTS],
    *[_private(_PHILIPS_GROUP, b, _PHILIPS_IDOSE) for b in _BLOCKS],
)
"""Every tag this module reads: add them to the header reader's specific tags."""


def _value(ds: Any, tag: int) -> str:
    elem = ds.get_item(tag)
    if elem is None or elem.value is None:
        return ""
    value = elem.value
    if isinstance(value, bytes):
        return value.decode("latin-1", "replace").strip(" \x00")
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _block(ds: Any, group: int, creator: str) -> int | None:
    for block in _BLOCKS:
        if _value(ds, (group << 16) | block).upper() == creator:
            return block
    return None


def recon_info(ds: Any) -> str:
    """The reconstruction markers of a header dataset as ``key=value; ...`` ("" when there are none)."""
    parts = []
    for key, tag in (("algorithm", _ALGORITHM), ("iterative_method", _ITERATIVE_METHOD)):
        if text := _value(ds, tag):
            parts.append(f"{key}={text}")
    block = _block(ds, _GE_GROUP, _GE_CREATOR)
    if block is not None:
        values = [v for e in _GE_ELEMENTS if (v := _value(ds, _private(_GE_GROUP, block, e)))]
        if values:
            parts.append("ge_iterative=" + "/".join(values))
    block = _block(ds, _PHILIPS_GROUP, _PHILIPS_CREATOR)
    if block is not None and (level := _value(ds, _private(_PHILIPS_GROUP, block, _PHILIPS_IDOSE))):
        parts.append(f"philips_idose={level}")
    return "; ".join(parts)
