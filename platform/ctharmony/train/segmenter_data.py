"""The liver segmenter's training data as a mix: phantom archives, re-simulated real archives, original real images.

The reference segmenter (``models/liver-unet.md``) trains on the reference reconstruction (M80) with true
masks. Phantom anatomy alone teaches it the phantom's shapes; real anatomy teaches real ones. A mix
(:class:`SegmenterData`, YAML via :func:`load_data_mix`) names:

- ``archives``: catalogued archives (``ctharmony simulate``, phantom or real anatomy) with their
  ``masks/`` folder: their ok M80 series whose study has ``<masks>/<StudyInstanceUID>.nii.gz``. A real
  archive's ``phantom.parquet`` (beside ``masks/``) says which real case each study re-simulates
  (``real_case``, :mod:`ctharmony.simulate.real_cases`); ``exclude_cases`` leaves cases out (a held-out
  patient).
- ``originals``: real series with their liver masks, trained on as they are (their own protocol, not M80):
  the central ``slices`` of the trunk (:func:`ctharmony.simulate.real.load_real`: air outside the trunk, the
  mask put on the image grid in physical space), resampled in-plane to what the segmenter sees of a
  re-simulated case: ``size`` x ``size`` pixels on the grid ``ctharmony simulate`` would give it at ``site``
  (:func:`ctharmony.simulate.real.real_grid`, area-averaged when shrinking; the mask nearest-neighbour).
  The HU window is the spec's, applied inside the model as for every other source.

Splits keep a real patient on one side: every study of real case ``c`` and its original share the key
``real:<c>``. Real cases are scarce, so by default they all train (``split_real: false``) and validation
Dice is over held-out phantom patients (the spec's ``train.val_fraction``).

Example (YAML; relative paths are relative to the file)::

    archives:
      - {catalog: phantom/catalog.parquet, masks: phantom/masks}
      - {catalog: real/catalog.parquet, masks: real/masks, exclude_cases: [siemens-abdomen-ct]}
    originals:
      - {series: cases/ts-example-ct, mask: cases/ts-example-ct-liver.nii.gz}
    size: 128
    site: siemens-force
    slices: 16

and ``train_segmenter(catalog, masks, "liver-unet", data=Path("mix.yaml"))`` or
``ctharmony train-segmenter --catalog C --masks M --data mix.yaml`` (``catalog``/``masks`` join the archives).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ctharmony.train.data import TrainingDataError, split_by_patient

log = logging.getLogger(__name__)
REAL_KEY = "real:"


@dataclasses.dataclass(frozen=True)
class ArchiveSource:
    """A catalogued archive and its true masks; ``exclude_cases``: real cases (by name) left out."""

    catalog: Path
    masks: Path
    exclude_cases: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class OriginalCase:
    """A real series folder (DICOM) and its liver mask (NIfTI), trained on as it is."""

    series: Path
    mask: Path

    @property
    def name(self) -> str:
        from ctharmony.simulate.real_cases import case_name

        return case_name(self.series)


@dataclasses.dataclass(frozen=True)
class SegmenterData:
    """What the segmenter trains on (module docstring)."""

    archives: tuple[ArchiveSource, ...] = ()
    originals: tuple[OriginalCase, ...] = ()
    size: int = 128  # originals: rows = columns after resampling
    site: str = "siemens-force"  # originals: the field of view of this site's simulated grid
    slices: int | None = None  # originals: central slices (None: all)
    original_repeat: int = 1  # originals' slices counted this many times in the patch draw
    split_real: bool = False  # real cases may go to validation too (default: they all train)

    def check(self) -> SegmenterData:
        """Every file there, sizes sane; :class:`TrainingDataError` naming the file or value otherwise."""
        for a in self.archives:
            if not Path(a.catalog).is_file():
                raise TrainingDataError(f"segmenter data: archive catalog {a.catalog}: no such file")
            if not Path(a.masks).is_dir():
                raise TrainingDataError(f"segmenter data: masks folder {a.masks}: no such folder "
                                        f"(the masks of {a.catalog})")
        for o in self.originals:
            if not Path(o.series).is_dir():
                raise TrainingDataError(f"segmenter data: original series {o.series}: not a folder of DICOM files")
            if not Path(o.mask).is_file():
                raise TrainingDataError(f"segmenter data: liver mask {o.mask}: no such file (the mask of "
                                        f"{o.series})")
        if not self.archives and not self.originals:
            raise TrainingDataError("segmenter data: no archive and no original: nothing to train on")
        if self.size < 32 or self.original_repeat < 1 or (self.slices is not None and self.slices < 1):
            raise TrainingDataError(f"segmenter data: need size >= 32, original_repeat >= 1, slices >= 1 (or "
                                    f"null); got {self.size}, {self.original_repeat}, {self.slices}")
        return self


_KEYS = {f.name for f in dataclasses.fields(SegmenterData)}
_ARCHIVE_KEYS = {"catalog", "masks", "exclude_cases"}
_ORIGINAL_KEYS = {"series", "mask"}


def data_mix(raw: Mapping[str, Any], base: Path = Path("."), where: str = "segmenter data") -> SegmenterData:
    """A :class:`SegmenterData` from a mapping (the YAML's), paths relative to ``base``; checked."""
    if not isinstance(raw, Mapping):
        raise TrainingDataError(f"{where}: expected a mapping with {', '.join(sorted(_KEYS))}")

    def keys(item: Any, allowed: set[str], required: set[str], what: str) -> Mapping[str, Any]:
        if not isinstance(item, Mapping):
            raise TrainingDataError(f"{where}: each of {what} is a mapping with {', '.join(sorted(allowed))}; "
                                    f"got {item!r}")
        unknown, missing = sorted(set(item) - allowed), sorted(required - set(item))
        if unknown or missing:
            raise TrainingDataError(f"{where}: {what} entry {dict(item)}: " + "; ".join(
                ([f"unknown key(s) {', '.join(unknown)}"] if unknown else [])
                + ([f"missing {', '.join(missing)}"] if missing else [])) + f" (keys: {', '.join(sorted(allowed))})")
        return item

    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise TrainingDataError(f"{where}: unknown key(s) {', '.join(unknown)} (keys: {', '.join(sorted(_KEYS))})")

    def path(value: Any) -> Path:
        p = Path(str(value)).expanduser()
        return p if p.is_absolute() else base / p

    archives = tuple(ArchiveSource(path(a["catalog"]), path(a["masks"]),
                                   tuple(str(c) for c in a.get("exclude_cases") or ()))
                     for a in (keys(x, _ARCHIVE_KEYS, {"catalog", "masks"}, "archives")
                               for x in raw.get("archives") or ()))
    originals = tuple(OriginalCase(path(o["series"]), path(o["mask"]))
                      for o in (keys(x, _ORIGINAL_KEYS, _ORIGINAL_KEYS, "originals")
                                for x in raw.get("originals") or ()))
    rest = {k: raw[k] for k in ("size", "site", "slices", "original_repeat", "split_real") if k in raw}
    return SegmenterData(archives=archives, originals=originals, **rest).check()


def load_data_mix(path: Path | str) -> SegmenterData:
    """Read a mix YAML (module docstring); errors name the file and the key or path at fault."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise TrainingDataError(f"segmenter data {path}: no such file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise TrainingDataError(f"segmenter data {path}: not YAML: {err}") from err
    return data_mix(raw, path.parent, where=f"segmenter data {path}")


def archive_records(source: ArchiveSource, target: str = "M80") -> list[dict[str, Any]]:
    """An archive's ok ``target`` series with a mask; re-simulated real studies keyed by their case."""
    import pandas as pd

    from ctharmony.archive import read_catalog
    from ctharmony.simulate.real_cases import origins
    from ctharmony.train.segmenter import m80_records

    table = Path(source.masks).parent / "phantom.parquet"
    cases = origins(pd.read_parquet(table)) if table.is_file() else {}
    rows = [r for r in read_catalog(source.catalog).series() if cases.get(r.study_uid) not in source.exclude_cases]
    by_files = {tuple(r.files): r.study_uid for r in rows}
    records = []
    for rec in m80_records(rows, source.masks, target):
        case = cases.get(by_files[tuple(rec["files"])])
        records.append({**rec, "kind": "real" if case else "archive", "case": case,
                        "patient_key": f"{REAL_KEY}{case}" if case else rec["patient_key"]})
    return records


def original_pair(case: OriginalCase, size: int = 128, site: str = "siemens-force",
                  slices: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A real series and its mask as the segmenter sees a re-simulated case: (z, size, size) HU and mask."""
    from scipy import ndimage

    from ctharmony.scanmodel.sites import load_site
    from ctharmony.simulate.real import load_real, real_grid

    try:
        source = load_real(case.series, case.mask, slices)
    except ValueError as err:
        raise TrainingDataError(str(err)) from err
    grid = real_grid(source, load_site(site), size)
    step = grid.spacing[2] / source.pixel_mm  # source pixels per output pixel
    offsets = (np.arange(size) - (size - 1) / 2.0) * step
    coords = np.stack(np.meshgrid(source.centre_px[0] + offsets, source.centre_px[1] + offsets, indexing="ij"))
    hu = source.hu
    if step > 1.5:  # area-average before point sampling (as the simulator's real_maps)
        hu = ndimage.uniform_filter(hu, (1, int(round(step)), int(round(step))), mode="nearest")
    image = np.stack([ndimage.map_coordinates(s, coords, order=1, cval=-1000.0) for s in hu]).astype(np.float32)
    mask = np.stack([ndimage.map_coordinates(s.astype(np.float32), coords, order=0, cval=0.0)
                     for s in source.liver]) > 0.5
    return image, mask.astype(np.float32)


def mixed_pairs(data: SegmenterData | Path | str, target: str, val_fraction: float, seed: int, *,
                catalog: Path | None = None, masks: Path | None = None
                ) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[tuple[np.ndarray, np.ndarray]]]:
    """(train, validation) (HU volume, mask) pairs of the mix (plus ``catalog`` / ``masks`` as an archive)."""
    from ctharmony.train.segmenter import read_mask_on_grid

    data = load_data_mix(data) if isinstance(data, (str, Path)) else data
    if catalog is not None:
        data = dataclasses.replace(data, archives=(ArchiveSource(Path(catalog), Path(masks or ".")), *data.archives))
    data.check()
    records = [r for a in data.archives for r in archive_records(a, target)]
    records += [{"kind": "original", "case": o.name, "patient_key": f"{REAL_KEY}{o.name}", "original": o}
                for o in data.originals]
    if not records:
        raise TrainingDataError("segmenter data: no series to train on")
    real = [r for r in records if r["patient_key"].startswith(REAL_KEY)]
    other = [r for r in records if not r["patient_key"].startswith(REAL_KEY)]
    if data.split_real or not real:
        train_recs, val_recs = split_by_patient(records, val_fraction, seed)
    elif len({r["patient_key"] for r in other}) >= 2:
        train_recs, val_recs = split_by_patient(other, val_fraction, seed)
        train_recs = [*train_recs, *real]
    else:
        train_recs, val_recs = records, []

    def pair(rec: dict[str, Any]) -> list[tuple[np.ndarray, np.ndarray]]:
        if rec["kind"] == "original":
            return [original_pair(rec["original"], data.size, data.site, data.slices)] * data.original_repeat
        return [read_mask_on_grid(rec["mask"], rec["files"])]

    train = [p for r in train_recs for p in pair(r)]
    val = [p for r in val_recs for p in pair(r)]
    sizes = sorted({tuple(p[0].shape[-2:]) for p in train + val})
    if len(sizes) > 1:
        raise TrainingDataError(f"segmenter data: slices of several in-plane sizes {sizes} (the U-Net trains on "
                                f"one); set the mix's size to the archives' (originals are resampled to it)")
    counts = {k: sum(r["kind"] == k for r in train_recs) for k in ("archive", "real", "original")}
    log.info("segmenter data: train %d phantom / other series, %d re-simulated real series, %d originals "
             "(real cases %s); %d validation series", counts["archive"], counts["real"], counts["original"],
             sorted({r["case"] for r in train_recs if r["case"]}), len(val))
    return train, val

