"""Write a :class:`Volume` as a derived CT series (one CT Image Storage file per slice).

Provenance follows MONAI Deploy's practice: new Series / SOP Instance UIDs derived
deterministically from the source series (its UID and SOP Instance UIDs, so that the parts of a
split series differ) and the model's name and version (rerunning the same
model on the same series gives the same UIDs, another model other UIDs), ImageType
``DERIVED\\SECONDARY\\AXIAL``, a DerivationDescription naming the model, a SourceImageSequence per
slice pointing at the source slice whose exact ImagePositionPatient / ImageOrientationPatient it carries
(gantry tilt, gaps and uneven spacing included), and "not for clinical use" in the SeriesDescription. Patient and
study modules are copied from the first source file, so the series files under the source study.
HU are stored as signed 16-bit integers (rounded) with slope 1, intercept 0. The slices are built and
encoded by the CT writer core (:mod:`ctharmony.archive.ct_dataset`), which also owns the UID scheme.

Example::

    paths = write_derived_series(vol, Path("out"), model_name="ctharmony-harmonizer",
                                 model_version="3")
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from ctharmony.archive.ct_dataset import (
    CT_IMAGE_STORAGE,
    ct_template,
    derived_uid,
    slice_part,
    stored_values,
    write_slices,
)
from ctharmony.archive.volume import Volume

__all__ = ["CT_IMAGE_STORAGE", "derived_description", "derived_uid", "fill_type2", "write_derived_series"]

NOT_FOR_CLINICAL_USE = "not for clinical use"
PATIENT_STUDY_KEYWORDS = (
    "SpecificCharacterSet", "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge",
    "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber", "StudyDescription",
)
TYPE2_EMPTY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
               "ReferringPhysicianName", "StudyID", "AccessionNumber")


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
    passthrough: bool = False,
) -> list[Path]:
    """Write ``volume`` as a derived CT series in ``out_dir``; returns the file paths in slice order.

    ``passthrough``: the HU are the source's, unchanged (a reference-protocol series the model was not
    applied to); the DerivationDescription says so and the UIDs differ from the model's output's.
    """
    source = _source_header(volume)
    tags = volume.tags
    source_series = tags.get("SeriesInstanceUID") or str(source.get("SeriesInstanceUID", ""))
    source_sops = list(tags.get("SOPInstanceUIDs") or [])
    # the source SOP UIDs tell apart the parts of a split series (which share a SeriesInstanceUID)
    series_uid = derived_uid(source_series, model_name, model_version, *(["passthrough"] * passthrough),
                             *source_sops)
    source_class = tags.get("SOPClassUID") or CT_IMAGE_STORAGE
    now = dt.datetime.now(dt.timezone.utc)
    identity = {keyword: source.data_element(keyword).value for keyword in PATIENT_STUDY_KEYWORDS if keyword in source}
    series = {
        "StudyInstanceUID": tags.get("StudyInstanceUID") or str(source.get("StudyInstanceUID", ""))
        or derived_uid(series_uid),
        "SeriesInstanceUID": series_uid,
        "FrameOfReferenceUID": tags.get("FrameOfReferenceUID") or derived_uid(series_uid, "frame"),
        "PositionReferenceIndicator": "", "SeriesNumber": int(source.get("SeriesNumber", 0) or 0) + 1000,
        "SeriesDescription": derived_description(str(source.get("SeriesDescription", "")), model_name,
                                                 model_version, series_description),
        "Manufacturer": "ctharmony", "ManufacturerModelName": model_name[:64],
        "SoftwareVersions": str(model_version)[:64], "ImageType": ["DERIVED", "SECONDARY", "AXIAL"],
        "DerivationDescription": (f"Reference protocol, pixel data unchanged from series {source_series} "
                                  f"(ctharmony model {model_name} version {model_version} not applied); "
                                  f"{NOT_FOR_CLINICAL_USE}" if passthrough else
                                  f"Harmonized by ctharmony model {model_name} version {model_version} "
                                  f"from series {source_series}; {NOT_FOR_CLINICAL_USE}")[:1024],
        "ImageComments": NOT_FOR_CLINICAL_USE, "BurnedInAnnotation": "NO",
        "InstanceCreationDate": now.strftime("%Y%m%d"), "ContentDate": now.strftime("%Y%m%d"),
        "InstanceCreationTime": now.strftime("%H%M%S"), "ContentTime": now.strftime("%H%M%S"),
        "KVP": source.get("KVP", ""), "AcquisitionNumber": "",
    }
    stored = stored_values(volume.hu)
    template = fill_type2(ct_template(
        rows=stored.shape[1], columns=stored.shape[2], pixel_spacing=volume.spacing[1:], signed=True,
        orientation=[*volume.direction[:, 0], *volume.direction[:, 1]],
        slice_thickness=tags.get("SliceThickness") or volume.spacing[0], tags=identity | series,
    ))
    parts = [
        slice_part(stored[k], position=volume.positions[k], sop_uid=derived_uid(series_uid, str(k)), instance=k + 1,
                   source=(source_class, source_sops[k]) if k < len(source_sops) and source_sops[k] else None)
        for k in range(volume.shape[0])  # each slice in its source slice's own plane
    ]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return write_slices(template, parts, [out_dir / f"IM{k + 1:05d}.dcm" for k in range(volume.shape[0])])
