"""Write and read liver masks as DICOM SEG (highdicom) referencing the source CT series.

The SEG is a binary segmentation whose frames map one to one onto the source slices (same order
as the :class:`Volume`), with the algorithm named in its segment description. Its Series / SOP
Instance UIDs are derived deterministically from the source series and the algorithm's name and
version. Source slices with surrogate UIDs (see ``reader``: missing or invalid UIDs) are referenced by
those surrogates.

Example::

    write_seg(mask, vol, Path("liver.seg.dcm"), algorithm_name="ctharmony-liver-unet",
              algorithm_version="2")
    read_seg(Path("liver.seg.dcm"), vol).sum()
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ctharmony.archive.derived_writer import derived_description, derived_uid, fill_type2
from ctharmony.archive.uids import is_valid_uid
from ctharmony.archive.volume import Volume


def _source_datasets(source: Volume) -> list[Any]:
    """Source slice headers in volume order, with surrogate UIDs filled in where the files lack them."""
    import pydicom

    files = source.tags.get("source_files") or []
    sop_uids = source.tags.get("SOPInstanceUIDs") or []
    if len(files) != source.shape[0] or len(sop_uids) != source.shape[0]:
        raise ValueError(f"the volume has {source.shape[0]} slices but {len(files)} source files / "
                         f"{len(sop_uids)} SOP Instance UIDs in its tags")
    datasets = []
    for path, sop_uid in zip(files, sop_uids, strict=True):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception as err:  # noqa: BLE001
            raise OSError(f"{path}: cannot read the source header ({err})") from err
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID"):
            if not is_valid_uid(ds.get(keyword)):
                setattr(ds, keyword, source.tags.get(keyword) or ds.file_meta.get(f"MediaStorage{keyword}", ""))
        if ds.get("FrameOfReferenceUID") and not is_valid_uid(ds.FrameOfReferenceUID):
            ds.FrameOfReferenceUID = source.tags.get("FrameOfReferenceUID")
        if not is_valid_uid(ds.get("SOPInstanceUID")):
            ds.SOPInstanceUID = sop_uid
        datasets.append(fill_type2(ds))
    return datasets


def _segment_type(label: str) -> tuple[Any, Any]:
    from pydicom.sr.codedict import codes

    known = {"liver": codes.SCT.Liver, "spleen": codes.SCT.Spleen, "kidney": codes.SCT.Kidney}
    return codes.SCT.Organ, known.get(label.lower(), codes.SCT.Organ)


def write_seg(
    mask: np.ndarray,
    source: Volume,
    out_path: Path,
    *,
    algorithm_name: str,
    algorithm_version: str,
    segment_label: str = "Liver",
) -> Path:
    """Write ``mask`` (z, y, x; non-zero = inside) as a DICOM SEG referencing ``source``'s slices."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    mask = np.asarray(mask)
    if mask.shape != source.shape:
        raise ValueError(f"mask shape {mask.shape} differs from the source volume's {source.shape}")
    sources = _source_datasets(source)
    category, kind = _segment_type(segment_label)
    algorithm = hd.AlgorithmIdentificationSequence(
        name=algorithm_name, version=str(algorithm_version), family=codes.cid7162.ArtificialIntelligence
    )
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=segment_label,
        segmented_property_category=category,
        segmented_property_type=kind,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
    )
    series_uid = derived_uid(source.tags["SeriesInstanceUID"], algorithm_name, algorithm_version, "seg",
                             *[str(uid) for uid in source.tags["SOPInstanceUIDs"]])
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=(mask > 0).astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description],
        series_instance_uid=series_uid,
        series_number=int(sources[0].get("SeriesNumber", 0) or 0) + 2000,
        sop_instance_uid=derived_uid(series_uid, "0"),
        instance_number=1,
        manufacturer="ctharmony",
        manufacturer_model_name=algorithm_name[:64],
        software_versions=str(algorithm_version)[:64],
        device_serial_number="0",
        series_description=derived_description(f"{segment_label} SEG", algorithm_name, algorithm_version),
        omit_empty_frames=False,
    )
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        seg.save_as(out_path)
    except Exception as err:  # noqa: BLE001
        raise OSError(f"{out_path}: cannot write the DICOM SEG ({err})") from err
    return out_path


def read_seg(path: Path, source: Volume, segment_number: int = 1) -> np.ndarray:
    """A SEG's segment as a uint8 mask (z, y, x) on ``source``'s grid (frames matched by SOP Instance UID)."""
    import highdicom as hd

    try:
        seg = hd.seg.segread(path)
    except Exception as err:  # noqa: BLE001
        raise OSError(f"{path}: cannot read the DICOM SEG ({err})") from err
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=list(source.tags["SOPInstanceUIDs"]), segment_numbers=[segment_number]
    )
    return pixels[..., 0].astype(np.uint8)
