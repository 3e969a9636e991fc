"""Write one converted series: harmonized DICOM series, two DICOM SEGs, two mask files, a results row.

Everything is written into a staging folder and renamed into place at the end (see
:mod:`ctharmony.infer.resume`), so a crash leaves either the complete series or nothing. A failure
here marks the row failed with its reason; it never raises into the pipeline. A reference-protocol
series passed through (``harmonizer_action`` "passthrough") is written from its input HU, marked as
unchanged in its DerivationDescription and SeriesDescription, with UIDs of its own.

Example::

    record = write_converted_series(row, "converted/")
    record["status"], record["seg_original_path"]
    # -> ('done', '/.../converted/series/1.2.3/seg_original.dcm')
"""

from __future__ import annotations

import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ctharmony.infer.resume import OutputLayout

IDENTITY_FIELDS = ("series_key", "series_uid", "study_uid", "patient_key", "site", "protocol")
RECORD_DEFAULTS: dict[str, Any] = {
    "model_name": "", "model_version": "", "segmenter_name": "", "segmenter_version": "",
    "output_series_uid": "", "output_dir": "", "seg_original_path": "", "seg_harmonized_path": "",
    "mask_original_path": "", "mask_harmonized_path": "",
    "liver_volume_ml_original": float("nan"), "liver_volume_ml_harmonized": float("nan"),
    "seconds_read": 0.0, "seconds_harmonize": 0.0, "seconds_segment": 0.0, "seconds_write": 0.0,
    "slices": 0, "node_id": "", "status": "failed", "reason": "",
    "harmonizer_action": "",  # "harmonized", or "passthrough" (a reference-protocol series kept unchanged)
}


def base_record(row: dict[str, Any]) -> dict[str, Any]:
    """The results row of ``row`` with everything known so far (identity, models, timings, status)."""
    record = {field: _scalar(row.get(field, "")) for field in IDENTITY_FIELDS}
    for field, default in RECORD_DEFAULTS.items():
        value = row.get(field, default)
        record[field] = type(default)(_scalar(value)) if value is not None else default
    return record


# The source series' tags (``archive.reader``) travel in pipeline rows as explicit columns, never pickled.
# Lists go as 1-D numpy string arrays (Ray tensor columns): an Arrow list<string> column comes back from the
# numpy-format actors as object arrays, which Ray can only store by pickling them.
TAG_TEXT = ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "SOPClassUID", "Modality",
            "Manufacturer", "SeriesDescription", "ConvolutionKernel")  # string columns
TAG_REAL = ("SliceThickness",)  # float64 columns
TAG_LISTS = ("SOPInstanceUIDs", "source_files", "surrogate_uids")  # string-array columns
TAG_PREFIX = "tag_"


def tag_columns(tags: dict[str, Any]) -> dict[str, Any]:
    """The pipeline-row columns (``tag_<name>``) carrying a Volume's ``tags``; every tag must have one.

    Example:
        >>> tag_columns({"SOPInstanceUIDs": ["1.2.1", "1.2.2"], "SliceThickness": 2.5})["tag_SOPInstanceUIDs"]
        array(['1.2.1', '1.2.2'], dtype='<U5')
    """
    known = (*TAG_TEXT, *TAG_REAL, *TAG_LISTS)
    unknown = sorted(set(tags) - set(known))
    if unknown:
        raise ValueError(f"tags {unknown} have no pipeline column (known: {', '.join(known)})")
    columns: dict[str, Any] = {TAG_PREFIX + name: str(tags.get(name) or "") for name in TAG_TEXT}
    columns.update({TAG_PREFIX + name: float(tags.get(name) or 0.0) for name in TAG_REAL})
    columns.update({TAG_PREFIX + name: np.asarray([str(v) for v in tags.get(name) or []], dtype=str)
                    for name in TAG_LISTS})
    return columns


def tags_of(row: dict[str, Any]) -> dict[str, Any]:
    """The tags carried by a pipeline row's ``tag_<name>`` columns (the inverse of :func:`tag_columns`)."""
    tags: dict[str, Any] = {name: str(_scalar(row[TAG_PREFIX + name])) for name in TAG_TEXT}
    tags.update({name: float(_scalar(row[TAG_PREFIX + name])) for name in TAG_REAL})
    tags.update({name: [str(v) for v in np.asarray(row[TAG_PREFIX + name]).ravel()] for name in TAG_LISTS})
    return tags


def volume_of(row: dict[str, Any], hu: np.ndarray):
    """Rebuild the source ``Volume`` (geometry + tags) carried by a pipeline row around ``hu``."""
    from ctharmony.archive import Volume

    return Volume(
        hu=np.asarray(hu),
        spacing=tuple(np.asarray(row["spacing"], dtype=float)),
        origin=tuple(np.asarray(row["origin"], dtype=float)),
        direction=np.asarray(row["direction"], dtype=float).reshape(3, 3),
        tags=tags_of(row),
        positions=np.asarray(row["positions"], dtype=float).reshape(-1, 3),
    )


def derived_volume(volume, files: list[Path]):
    """The harmonized Volume re-described by the files just written (new UIDs, new source files)."""
    import pydicom

    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    tags = {
        **volume.tags,
        "SeriesInstanceUID": str(headers[0].SeriesInstanceUID),
        "SOPInstanceUIDs": [str(h.SOPInstanceUID) for h in headers],
        "source_files": [str(f) for f in files],
    }
    return volume.with_hu(volume.hu, **tags), str(headers[0].SeriesInstanceUID)


def write_converted_series(row: dict[str, Any], out: str | Path) -> dict[str, Any]:
    """Write the outputs of one pipeline row; returns its results row (status done or failed)."""
    layout = OutputLayout(out)
    record = base_record(row)
    key = record["series_key"]
    if record["status"] != "ok":
        record["status"] = "failed"
        return record
    if layout.is_done(key):  # a retried task after the first attempt committed
        return layout.read_record(key)
    start = time.perf_counter()
    staging = None
    try:
        staging = layout.new_staging_dir(key)
        record = _write_outputs(row, record, staging)
        record["seconds_write"] = time.perf_counter() - start
        layout.write_record(staging, record)
        layout.commit(staging, key)
        return layout.read_record(key)
    except Exception as err:  # noqa: BLE001 - one bad series never stops the job
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        record.update(status="failed", reason=f"write: {type(err).__name__}: {err}",
                      seconds_write=time.perf_counter() - start)
        return record


def _write_outputs(row: dict[str, Any], record: dict[str, Any], staging: Path) -> dict[str, Any]:
    from ctharmony.archive import write_derived_series, write_seg

    original = volume_of(row, row["hu"])
    passthrough = record["harmonizer_action"] == "passthrough"
    record["harmonizer_action"] = record["harmonizer_action"] or "harmonized"
    harmonized = original.with_hu(np.asarray(row["hu" if passthrough else "hu_harmonized"], dtype=np.float32))
    mask_original = np.asarray(row["mask_original"], dtype=np.uint8)
    mask_harmonized = np.asarray(row["mask_harmonized"], dtype=np.uint8)
    files = write_derived_series(harmonized, staging / "harmonized", model_name=record["model_name"],
                                 model_version=record["model_version"], passthrough=passthrough,
                                 series_description=_passthrough_description(original) if passthrough else None)
    harmonized, output_uid = derived_volume(harmonized, [Path(f) for f in files])  # volume order
    algorithm = {"algorithm_name": record["segmenter_name"], "algorithm_version": record["segmenter_version"]}
    masks = {"original": (mask_original, original), "harmonized": (mask_harmonized, harmonized)}
    if not mask_original.size:  # convert --no-original-mask: the original was not segmented
        del masks["original"]
    geometry = {"spacing": np.asarray(original.spacing, dtype=np.float64),
                "origin": np.asarray(original.origin, dtype=np.float64), "direction": original.direction,
                "positions": original.positions}
    paths: dict[str, str] = {}
    for name, (mask, volume) in masks.items():
        with warnings.catch_warnings():  # highdicom's nag about one-component (pseudonymous) patient names
            warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name.*")
            write_seg(mask, volume, staging / f"seg_{name}.dcm", **algorithm)
        np.savez_compressed(staging / f"mask_{name}.npz", mask=mask, **geometry)
        # paths as they will be once the staging folder is renamed into place
        paths.update({f"seg_{name}_path": str(staging / f"seg_{name}.dcm"),
                      f"mask_{name}_path": str(staging / f"mask_{name}.npz"),
                      f"liver_volume_ml_{name}": original.volume_ml(mask)})  # over the true slice planes
    record.update(
        paths,
        output_series_uid=output_uid,
        output_dir=str(staging / "harmonized"),
        slices=int(original.shape[0]),
        status="done",
        reason=rounding_note(original.hu) if passthrough else "",
    )
    return record


def _passthrough_description(volume) -> str:
    """SeriesDescription of a pass-through series: the source's, marked unchanged (not for clinical use)."""
    from ctharmony.archive.derived_writer import derived_description

    source = str(volume.tags.get("SeriesDescription") or "")
    return derived_description(source, "", "", f"{source} reference unchanged".strip())


def rounding_note(hu: np.ndarray) -> str:
    """Empty when the derived series (int16, slope 1, intercept 0) stores ``hu`` exactly, else a note of the rounding.

    Example:
        >>> rounding_note(np.array([-1024.0, 40.0], np.float32))
        ''
    """
    from ctharmony.archive.ct_dataset import stored_values

    change = np.abs(stored_values(hu).astype(np.float32) - hu)
    worst = float(change.max()) if change.size else 0.0
    return "" if worst == 0 else (f"passthrough: the derived DICOM series rounds HU to int16 (largest change "
                                  f"{worst:g} HU); the masks were made from the exact input")


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
