"""Write a phantom series as classic CT Image Storage files (one file per slice), with pydicom.

Pixels are stored as unsigned 16-bit with RescaleIntercept -1024 and RescaleSlope 1 (HU = value - 1024),
axial orientation (or the one given, e.g. gantry-tilted), ImagePositionPatient per slice. UIDs are
deterministic (``2.25.<128-bit hash>`` of the generator seed and the object's role), so the same seed
gives byte-identical files.

Example:
    >>> deterministic_uid("seed-0", "study", 3).startswith("2.25.")
    True
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
HU_OFFSET = 1024

# Tags per protocol (cross-team contract: the catalog classifies series by them). {k} = site kernel.
PROTOCOL_TAGS: dict[str, dict[str, Any]] = {
    "FBP": {"ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"], "SeriesDescription": "Abdomen PV 3.0 {k} FBP",
            "ConvolutionKernel": "{k}", "KVP": "120", "SeriesNumber": 2},
    "IR": {"ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"], "SeriesDescription": "Abdomen PV 3.0 {k} SAFIRE 3",
           "ConvolutionKernel": ["{k}", "3"], "KVP": "120", "SeriesNumber": 3},
    "M40": {"ImageType": ["DERIVED", "PRIMARY", "AXIAL", "MONOENERGETIC"],
            "SeriesDescription": "Abdomen PV Mono+ 40keV", "ConvolutionKernel": "{k}", "KVP": None,
            "SeriesNumber": 4},
    "M60": {"ImageType": ["DERIVED", "PRIMARY", "AXIAL", "MONOENERGETIC"],
            "SeriesDescription": "Abdomen PV Mono+ 60keV", "ConvolutionKernel": "{k}", "KVP": None,
            "SeriesNumber": 5},
    "M80": {"ImageType": ["DERIVED", "PRIMARY", "AXIAL", "MONOENERGETIC"],
            "SeriesDescription": "Abdomen PV Mono+ 80keV", "ConvolutionKernel": "{k}", "KVP": None,
            "SeriesNumber": 6},
    "OPT": {"ImageType": ["DERIVED", "PRIMARY", "AXIAL", "OPTIMUM_CONTRAST"],
            "SeriesDescription": "Abdomen PV DE Optimum Contrast", "ConvolutionKernel": "{k}", "KVP": "120",
            "SeriesNumber": 7},
}


def deterministic_uid(*parts: Any) -> str:
    """A valid UID (``2.25.`` + decimal 128-bit integer) derived from ``parts``."""
    digest = hashlib.sha256("|".join(str(p) for p in ("ctharmony-phantom", *parts)).encode()).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big') or 1}"


def protocol_tags(protocol: str, kernel: str) -> dict[str, Any]:
    """The contract's tags for ``protocol`` at a site using ``kernel``."""
    tags = dict(PROTOCOL_TAGS[protocol])
    tags["SeriesDescription"] = tags["SeriesDescription"].format(k=kernel)
    conv = tags["ConvolutionKernel"]
    tags["ConvolutionKernel"] = [c.format(k=kernel) for c in conv] if isinstance(conv, list) else conv.format(k=kernel)
    return tags


def _decimal(value: float) -> str:
    """A DICOM decimal string (<= 16 characters) for a value with at most ~4 decimals."""
    return f"{value:.10g}"


def _ds(values: Mapping[str, Any]) -> Dataset:
    ds = Dataset()
    for keyword, value in values.items():
        setattr(ds, keyword, "" if value is None else value)
    return ds


def write_ct_series(hu: np.ndarray, out_dir: Path, *, tags: Mapping[str, Any], origin: tuple[float, float, float],
                    spacing: tuple[float, float, float], sop_uid_seed: str, positions: np.ndarray | None = None,
                    orientation: Sequence[float] | None = None) -> list[Path]:
    """Write ``hu`` (z, y, x) as one CT file per slice ``0001.dcm ...``; returns the paths in z order.

    Args:
        hu: CT numbers; rounded and clipped to [-1024, 64511].
        out_dir: series folder (created).
        tags: patient / study / series / equipment attributes by DICOM keyword (None = empty, type 2).
        origin: LPS (x, y, z) mm of voxel (0, 0, 0); slices advance along +z.
        spacing: (z, y, x) mm.
        sop_uid_seed: seed of the deterministic SOPInstanceUIDs.
        positions: ImagePositionPatient of every slice, (z, 3) LPS mm (default: ``origin`` + k ``spacing[0]``
            along z); SliceLocation is their z.
        orientation: ImageOrientationPatient, row then column cosines (default: axial ``1 0 0 0 1 0``).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    stored = np.clip(np.rint(hu) + HU_OFFSET, 0, 65535).astype("<u2")
    nz, ny, nx = stored.shape
    ds = _ds(tags)
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.Modality = "CT"
    if positions is not None and np.shape(positions) != (nz, 3):
        raise ValueError(f"{out_dir}: {np.shape(positions)} slice positions for {nz} slices, need ({nz}, 3)")
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0] if orientation is None else [_decimal(v) for v in orientation]
    ds.PixelSpacing = [_decimal(spacing[1]), _decimal(spacing[2])]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = ny, nx
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = f"{-HU_OFFSET}", "1", "HU"
    ds.WindowCenter, ds.WindowWidth = "50", "400"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    encoder = SliceEncoder(ds)
    paths = []
    for k in range(nz):
        x, y, z = (origin[0], origin[1], origin[2] + k * spacing[0]) if positions is None else positions[k]
        uid = deterministic_uid(sop_uid_seed, k)
        meta.MediaStorageSOPInstanceUID = uid
        position = [_decimal(x), _decimal(y), _decimal(z)]
        data = encoder.encode(meta, {"SOPInstanceUID": uid, "InstanceNumber": k + 1, "ImagePositionPatient": position,
                                     "SliceLocation": _decimal(z), "PixelData": stored[k].tobytes()})
        path = out_dir / f"{k + 1:04d}.dcm"
        try:
            path.write_bytes(data)
        except OSError as err:
            raise OSError(f"cannot write DICOM file {path}: {err}") from err
        paths.append(path)
    return paths


class SliceEncoder:
    """Encodes the files of one series fast: the tags common to all slices are encoded once.

    The bytes equal ``Dataset.save_as(..., enforce_file_format=True)`` in explicit VR little endian
    (a test checks it); only the per-slice elements are encoded per file.
    """

    VARYING = {"SOPInstanceUID": "UI", "InstanceNumber": "IS", "ImagePositionPatient": "DS",
               "SliceLocation": "DS", "PixelData": "OW"}

    def __init__(self, template: Dataset) -> None:
        varying = {tag_for_keyword(k): k for k in self.VARYING}
        self.chunks: list[bytes | str] = []
        run = Dataset()
        for tag in sorted(set(template.keys()) | set(varying)):
            if tag in varying:
                if len(run):
                    self.chunks.append(_encode(run))
                    run = Dataset()
                self.chunks.append(varying[tag])
            else:
                run.add(template[tag])
        if len(run):
            self.chunks.append(_encode(run))

    def encode(self, file_meta: FileMetaDataset, values: Mapping[str, Any]) -> bytes:
        """The whole Part 10 file for one slice."""
        fp = _bytes_io()
        write_file_meta_info(fp, file_meta, enforce_standard=True)
        parts = [b"\0" * 128, b"DICM", fp.getvalue()]
        for chunk in self.chunks:
            if isinstance(chunk, bytes):
                parts.append(chunk)
            else:
                single = Dataset()
                single.add_new(tag_for_keyword(chunk), self.VARYING[chunk], values[chunk])
                parts.append(_encode(single))
        return b"".join(parts)


def _bytes_io() -> DicomBytesIO:
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    return fp


def _encode(ds: Dataset) -> bytes:
    fp = _bytes_io()
    write_dataset(fp, ds)
    return fp.getvalue()
