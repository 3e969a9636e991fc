"""The CT DICOM writer core: CT Image Storage slices from pixel data, geometry and identity, and their UIDs.

Every CT series ctharmony writes is built here: the phantom's archive (``ctharmony.phantom.dicom_writer``),
derived (harmonized) series (``ctharmony.archive.derived_writer``) and the synthetic test series
(``tests/testkit/synthetic_ct.py``). A series is a :func:`ct_template` (what its slices share: SOP class,
image plane and image pixel modules, rescale, and the caller's patient / study / series / equipment
tags) plus one :func:`slice_part` per slice (SOP Instance UID, instance number, position, source slice,
pixels). :func:`write_slices` encodes a series in explicit VR little endian with the shared part encoded
once (:class:`SliceEncoder`: the bytes ``save_as`` would write); :func:`save_slice` writes one whole
dataset in explicit or implicit VR or JPEG 2000 lossless. All UIDs come from one scheme, :func:`derived_uid`.

Example:
    >>> template = ct_template(rows=2, columns=2, pixel_spacing=(0.5, 0.5), signed=True)
    >>> part = slice_part(np.zeros((2, 2), np.int16), position=(0, 0, 1.5), sop_uid=derived_uid("s", 0), instance=1)
    >>> ds = full_dataset(template, part)
    >>> ds.Rows, ds.ImagePositionPatient[2], ds.SOPInstanceUID.startswith("2.25.")
    (2, '1.5', True)
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000Lossless

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
DERIVED = "ctharmony-derived"
PER_SLICE = ("SOPInstanceUID", "InstanceNumber", "ImagePositionPatient", "SliceLocation", "SourceImageSequence",
             "PixelData")
_PIXEL_DATA = 0x7FE00010


def derived_uid(*parts: object, namespace: str = DERIVED) -> str:
    """A deterministic UID ``2.25.<decimal>``: the first 128 bits of SHA-256 of ``namespace|part|...``.

    The same parts give the same UID; parts are joined with ``|``, so ``("ab", "c")`` and ``("a", "bc")``
    differ. Each writer has its namespace (derived series, the phantom, synthetic test series).
    """
    digest = hashlib.sha256("|".join(str(p) for p in (namespace, *parts)).encode()).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big') or 1}"


def decimal_string(value: float) -> str:
    """A DICOM Decimal String (at most 16 characters) for ``value``, as precise as that allows."""
    for digits in (15, 13, 11, 9, 7):
        text = f"{float(value):.{digits}g}"
        if len(text) <= 16:
            return text
    return f"{float(value):.6g}"


def stored_values(hu: np.ndarray, *, intercept: float = 0.0, signed: bool = True) -> np.ndarray:
    """HU -> 16-bit stored values for slope 1 (HU = stored + ``intercept``): rounded, clipped to the type's range."""
    dtype = np.dtype("<i2" if signed else "<u2")
    info = np.iinfo(dtype)
    return np.clip(np.rint(hu) - intercept, info.min, info.max).astype(dtype)


def ct_template(*, rows: int, columns: int, pixel_spacing: Sequence[float], orientation: Sequence[float] = AXIAL,
                signed: bool, slope: float = 1.0, intercept: float = 0.0, slice_thickness: float | None = None,
                tags: Mapping[str, Any] | None = None) -> Dataset:
    """The elements every slice of a CT series shares (and its file meta, explicit VR little endian).

    Args:
        rows, columns: image size.
        pixel_spacing: (row, column) spacing in mm.
        orientation: ImageOrientationPatient, row then column direction cosines (LPS).
        signed: PixelRepresentation 1 (int16) or 0 (uint16); 16 bits allocated and stored.
        slope, intercept: RescaleSlope / RescaleIntercept (RescaleType HU).
        slice_thickness: SliceThickness in mm (not set when None).
        tags: any other attributes by DICOM keyword, set last (they win); None gives the empty value (type 2).
    """
    if len(orientation) != 6 or len(pixel_spacing) != 2:
        raise ValueError(f"ct_template: need 6 orientation cosines and 2 pixel spacings, got {len(orientation)} "
                         f"and {len(pixel_spacing)}")
    ds = Dataset()
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.Modality = "CT"
    ds.ImageOrientationPatient = [decimal_string(v) for v in orientation]
    ds.PixelSpacing = [decimal_string(v) for v in pixel_spacing]
    if slice_thickness is not None:
        ds.SliceThickness = decimal_string(slice_thickness)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(rows), int(columns)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, int(signed)
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = decimal_string(intercept), decimal_string(slope), "HU"
    for keyword, value in (tags or {}).items():
        setattr(ds, keyword, "" if value is None else value)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return ds


def slice_part(stored: np.ndarray, *, position: Sequence[float], sop_uid: str, instance: int,
               slice_location: bool = False, source: tuple[str, str] | None = None) -> Dataset:
    """The per-slice elements of one slice: SOP Instance UID, InstanceNumber, ImagePositionPatient, pixels.

    ``slice_location`` adds SliceLocation (the position's z); ``source`` = (SOP Class UID, SOP Instance UID)
    of the slice it derives from adds a SourceImageSequence item.
    """
    part = Dataset()
    part.SOPInstanceUID = sop_uid
    part.InstanceNumber = int(instance)
    part.ImagePositionPatient = [decimal_string(v) for v in position]
    if slice_location:
        part.SliceLocation = decimal_string(position[2])
    if source is not None:
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = source
        part.SourceImageSequence = [ref]
    part.add_new(_PIXEL_DATA, "OW", np.ascontiguousarray(stored).tobytes())
    return part


def full_dataset(template: Dataset, part: Dataset) -> Dataset:
    """One slice as a whole dataset (a deep copy of ``template`` with ``part``'s elements)."""
    ds = copy.deepcopy(template)
    for element in part:
        ds.add(copy.deepcopy(element))
    ds.file_meta.MediaStorageSOPInstanceUID = part.SOPInstanceUID
    return ds


def write_slices(template: Dataset, parts: Sequence[Dataset], paths: Sequence[Path]) -> list[Path]:
    """Write each part with ``template`` as one Part 10 file (explicit VR little endian); returns ``paths``."""
    encoder = SliceEncoder(template)
    written = []
    for part, path in zip(parts, paths, strict=True):
        data = encoder.encode(part)
        try:
            Path(path).write_bytes(data)
        except OSError as err:
            raise OSError(f"{path}: cannot write the CT slice ({err})") from err
        written.append(Path(path))
    return written


def save_slice(ds: Dataset, path: Path, transfer_syntax: str = ExplicitVRLittleEndian) -> Path:
    """Write one whole dataset in explicit VR LE, implicit VR LE, or JPEG 2000 lossless (compressed by pydicom)."""
    if transfer_syntax == JPEG2000Lossless:
        ds.compress(JPEG2000Lossless)
    elif transfer_syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        ds.file_meta.TransferSyntaxUID = transfer_syntax
    else:
        raise ValueError(f"{path}: transfer syntax {transfer_syntax} cannot be written by the CT writer core")
    try:
        ds.save_as(path, enforce_file_format=True)
    except (OSError, ValueError) as err:
        raise OSError(f"{path}: cannot write the CT slice ({err})") from err
    return Path(path)


class SliceEncoder:
    """Encodes the files of one series fast: the elements common to all slices are encoded once.

    The bytes equal ``full_dataset(template, part).save_as(..., enforce_file_format=True)`` in explicit VR
    little endian; only the :data:`PER_SLICE` elements are encoded per file, in the template's character set.
    """

    def __init__(self, template: Dataset) -> None:
        varying = {tag_for_keyword(k) for k in PER_SLICE}
        clash = sorted(template[t].keyword for t in varying if t in template)
        if clash:
            raise ValueError(f"SliceEncoder: per-slice element(s) {', '.join(clash)} in the series template")
        self.file_meta = template.file_meta
        self.encoding = template.get("SpecificCharacterSet", "iso8859")
        self.chunks: list[bytes | int] = []
        run = Dataset()
        for tag in sorted(set(template.keys()) | varying):
            if tag in varying:
                if len(run):
                    self.chunks.append(self._encode(run))
                    run = Dataset()
                self.chunks.append(int(tag))
            else:
                run.add(template[tag])
        if len(run):
            self.chunks.append(self._encode(run))

    def encode(self, part: Dataset) -> bytes:
        """The whole Part 10 file for the slice whose per-slice elements are ``part``."""
        meta = FileMetaDataset()
        for element in self.file_meta:
            if element.keyword != "MediaStorageSOPInstanceUID":
                meta.add(element)
        meta.MediaStorageSOPInstanceUID = part.SOPInstanceUID
        fp = _bytes_io()
        write_file_meta_info(fp, meta, enforce_standard=True)
        pieces = [b"\0" * 128, b"DICM", fp.getvalue()]
        for chunk in self.chunks:
            if isinstance(chunk, bytes):
                pieces.append(chunk)
            elif chunk in part:
                single = Dataset()
                single.add(part[chunk])
                pieces.append(self._encode(single))
        return b"".join(pieces)

    def _encode(self, ds: Dataset) -> bytes:
        fp = _bytes_io()
        write_dataset(fp, ds, parent_encoding=self.encoding)
        return fp.getvalue()


def _bytes_io() -> DicomBytesIO:
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    return fp
