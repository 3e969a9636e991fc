"""Write a :class:`Volume` as a derived CT series (one CT Image Storage file per slice).

Provenance follows MONAI Deploy's practice: new Series / SOP Instance UIDs derived
deterministically from the source series (its UID and SOP Instance UIDs, so that the parts of a
split series differ) and the model's name and version (rerunning the same
model on the same series gives the same UIDs, another model other UIDs), ImageType
``DERIVED\\SECONDARY\\AXIAL``, a DerivationDescription naming the model, a SourceImageSequence per
slice pointing at the source slice whose exact ImagePositionPatient / ImageOrientationPatient it carries
(gantry tilt, gaps and uneven spacing included), and "not for clinical use" in the SeriesDescription. Patient and
study modules are copied from the first source file, so the series files under the source study.
HU are stored as signed 16-bit integers (rounded) with slope 1, intercept 0.

Example:
    >>> paths = write_derived_series(vol, Path("out"), model_name="ctharmony-harmonizer",
    ...                              model_version="3")  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np

from ctharmony.archive.volume import Volume

NOT_FOR_CLINICAL_USE = "not for clinical use"
PATIENT_STUDY_KEYWORDS = (
    "SpecificCharacterSet", "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge",
    "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber", "StudyDescription",
)
TYPE2_EMPTY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
               "ReferringPhysicianName", "StudyID", "AccessionNumber")
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def derived_uid(*parts: str) -> str:
    """A deterministic UID from ``parts`` (pydicom's hash-based ``generate_uid``)."""
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=["ctharmony-derived", *map(str, parts)])


def derived_description(source: str, model_name: str, model_version: str, wanted: str | None = None) -> str:
    """SeriesDescription (LO, at most 64 characters) that always ends with "not for clinical use"."""
    suffix = f" - {NOT_FOR_CLINICAL_USE}"
    text = wanted if wanted is not None else f"{source} {model_name} v{model_version}".strip()
    if NOT_FOR_CLINICAL_USE in text.lower() and len(text) <= 64:
        return text
    return text[: 64 - len(suffix)].rstrip() + suffix


def fill_type2(ds: Any) -> Any:
    """Give absent type-2 patient/study attributes their empty value (real files omit them; writers need them)."""
    for keyword in TYPE2_EMPTY:
        if keyword not in ds:
            setattr(ds, keyword, "")
    return ds


def _source_header(volume: Volume) -> Any:
    import pydicom

    files = volume.tags.get("source_files") or []
    if not files:
        raise ValueError("volume.tags['source_files'] is empty: the patient and study cannot be copied")
    try:
        return pydicom.dcmread(files[0], stop_before_pixels=True)
    except Exception as err:  # noqa: BLE001
        raise OSError(f"{files[0]}: cannot read the source header ({err})") from err


def write_derived_series(
    volume: Volume,
    out_dir: Path,
    *,
    model_name: str,
    model_version: str,
    series_description: str | None = None,
) -> list[Path]:
    """Write ``volume`` as a derived CT series in ``out_dir``; returns the file paths in slice order."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

    source = _source_header(volume)
    tags = volume.tags
    source_series = tags.get("SeriesInstanceUID") or str(source.get("SeriesInstanceUID", ""))
    # the source SOP UIDs tell apart the parts of a split series (which share a SeriesInstanceUID)
    series_uid = derived_uid(source_series, model_name, model_version, *list(tags.get("SOPInstanceUIDs") or []))
    study_uid = tags.get("StudyInstanceUID") or str(source.get("StudyInstanceUID", "")) or derived_uid(series_uid)
    frame_uid = tags.get("FrameOfReferenceUID") or derived_uid(series_uid, "frame")
    source_sops = list(tags.get("SOPInstanceUIDs") or [])
    source_class = tags.get("SOPClassUID") or CT_IMAGE_STORAGE
    description = derived_description(str(source.get("SeriesDescription", "")), model_name, model_version,
                                      series_description)
    now = dt.datetime.now(dt.timezone.utc)
    stored = np.clip(np.rint(volume.hu), -32768, 32767).astype(np.int16)
    row_cos, column_cos = volume.direction[:, 0], volume.direction[:, 1]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(volume.shape[0]):
        sop_uid = derived_uid(series_uid, str(k))
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        for keyword in PATIENT_STUDY_KEYWORDS:
            if keyword in source:
                setattr(ds, keyword, source.data_element(keyword).value)
        fill_type2(ds)
        ds.SOPClassUID = CT_IMAGE_STORAGE
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        ds.Modality = "CT"
        ds.SeriesNumber = int(source.get("SeriesNumber", 0) or 0) + 1000
        ds.InstanceNumber = k + 1
        ds.SeriesDescription = description
        ds.Manufacturer = "ctharmony"
        ds.ManufacturerModelName = model_name[:64]
        ds.SoftwareVersions = str(model_version)[:64]
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
        ds.DerivationDescription = (f"Harmonized by ctharmony model {model_name} version {model_version} "
                                    f"from series {source_series}; {NOT_FOR_CLINICAL_USE}")[:1024]
        ds.ImageComments = NOT_FOR_CLINICAL_USE
        ds.BurnedInAnnotation = "NO"
        ds.InstanceCreationDate = ds.ContentDate = now.strftime("%Y%m%d")
        ds.InstanceCreationTime = ds.ContentTime = now.strftime("%H%M%S")
        if k < len(source_sops) and source_sops[k]:
            ref = Dataset()
            ref.ReferencedSOPClassUID = source_class
            ref.ReferencedSOPInstanceUID = source_sops[k]
            ds.SourceImageSequence = DicomSequence([ref])
        ds.KVP = source.get("KVP", "") if "KVP" in source else ""
        ds.AcquisitionNumber = ""
        ds.ImagePositionPatient = [_ds(v) for v in volume.positions[k]]  # the source slice's own plane
        ds.ImageOrientationPatient = [_ds(v) for v in (*row_cos, *column_cos)]
        ds.PixelSpacing = [_ds(volume.spacing[1]), _ds(volume.spacing[2])]
        ds.SliceThickness = _ds(tags.get("SliceThickness") or volume.spacing[0])
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = int(stored.shape[1]), int(stored.shape[2])
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = 0
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        ds.PixelData = stored[k].tobytes()
        path = out_dir / f"IM{k + 1:05d}.dcm"
        try:
            ds.save_as(path, enforce_file_format=True)
        except Exception as err:  # noqa: BLE001
            raise OSError(f"{path}: cannot write the derived slice ({err})") from err
        paths.append(path)
    return paths


def _ds(value: float) -> str:
    """A Decimal String (at most 16 characters) for ``value``."""
    for digits in (15, 13, 11, 9, 7):
        text = f"{float(value):.{digits}g}"
        if len(text) <= 16:
            return text
    return f"{float(value):.6g}"
