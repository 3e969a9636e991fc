"""Training data from the catalog: studies, a patient-level split, volumes and paired random patches.

A *study record* is one study's ok series by protocol::

    {"study_uid": ..., "patient_key": ..., "files_json": '{"M80": [...], "M40": [...], ...}'}

(files as JSON text so Ray Data rows keep one flat schema). Records feed the Train workers through
Ray Data shards; each worker reads its studies' volumes once (:func:`load_study`) and draws paired
patches at the same location in every protocol (:class:`PairedPatchSampler`): input any protocol,
target the reference (M80).

Example:
    >>> records = study_records(catalog_df, protocols=("M40", "M80"))  # doctest: +SKIP
    >>> train, val = split_by_patient(records, val_fraction=0.25, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


class TrainingDataError(ValueError):
    """The catalog cannot give what training needs; the message says what is missing."""


def read_catalog(path: str | Path) -> Any:
    """The catalog Parquet as a DataFrame (clear error naming the file)."""
    import pandas as pd

    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as err:
        raise TrainingDataError(f"cannot read catalog {path}: {err}") from err


def study_records(catalog: Any, protocols: Sequence[str], target: str = "M80") -> list[dict[str, Any]]:
    """One record per study holding the target and at least one other wanted protocol (ok series only).

    When a study has several series of one protocol, the one with the most slices is used.
    """
    needed = {"study_uid", "patient_key", "protocol", "files", "status"}
    missing = needed - set(catalog.columns)
    if missing:
        raise TrainingDataError(f"catalog lacks column(s) {', '.join(sorted(missing))}")
    ok = catalog[(catalog["status"] == "ok") & catalog["protocol"].isin(list(protocols) + [target])]
    records = []
    for study_uid, group in ok.groupby("study_uid", sort=True):
        files: dict[str, list[str]] = {}
        for _, row in group.sort_values("slices" if "slices" in group else "protocol").iterrows():
            files[str(row["protocol"])] = [str(f) for f in row["files"]]  # the last (most slices) wins
        if target not in files or len(files) < 2:
            continue
        records.append(
            {"study_uid": str(study_uid), "patient_key": str(group["patient_key"].iloc[0]),
             "files_json": json.dumps(files, sort_keys=True)}
        )
    if not records:
        raise TrainingDataError(f"no study in the catalog has an ok {target} series plus another protocol")
    return records


def split_by_patient(
    records: Sequence[dict[str, Any]], val_fraction: float, seed: int = 0
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Deterministic train/validation split by patient key (a patient is never on both sides)."""
    patients = sorted({r["patient_key"] for r in records})
    if len(patients) < 2:
        raise TrainingDataError(f"need at least 2 patients for a train/validation split, got {len(patients)}")
    order = sorted(patients, key=lambda p: hashlib.sha256(f"{seed}:{p}".encode()).hexdigest())
    n_val = min(len(patients) - 1, max(1, round(val_fraction * len(patients))))
    val_patients = set(order[:n_val])
    train = [r for r in records if r["patient_key"] not in val_patients]
    val = [r for r in records if r["patient_key"] in val_patients]
    return train, val


def pad_to_workers(records: list[dict[str, Any]], workers: int) -> list[dict[str, Any]]:
    """Repeat records cyclically so each of ``workers`` equal shards gets at least one and none is dropped."""
    if not records:
        return records
    n = max(workers, -(-len(records) // workers) * workers)
    return [records[i % len(records)] for i in range(n)]


def read_hu(files: Sequence[str]) -> np.ndarray:
    """HU volume (z, y, x) float32 of a series (``ctharmony.archive.read_series``; its errors name the file)."""
    from ctharmony.archive import read_series
    from ctharmony.archive.orientation import to_canonical

    # the canonical in-plane layout, as the networks see slices at inference (ctharmony.infer.predictors)
    return to_canonical(read_series(files)).hu.astype(np.float32, copy=False)


def load_study(record: dict[str, Any], target: str = "M80") -> dict[str, np.ndarray]:
    """Read a study's series as HU volumes (z, y, x); protocols whose grid differs from the target's are
    skipped with a warning."""
    files = json.loads(record["files_json"])
    volumes = {target: read_hu(files[target])}
    for protocol, paths in sorted(files.items()):
        if protocol == target:
            continue
        hu = read_hu(paths)
        if hu.shape != volumes[target].shape:
            log.warning("study %s: %s grid %s differs from %s %s; skipped", record["study_uid"][-8:],
                        protocol, hu.shape, target, volumes[target].shape)
            continue
        volumes[protocol] = hu
    return volumes


class PairedPatchSampler:
    """Random paired patches: same (slice, y, x) window in an input protocol and in the target.

    Args:
        studies: loaded studies, each ``{protocol: HU volume (z, y, x)}`` including ``target``.
        patch_size: square patch side (clipped to the image; 0 = whole slices).
        target: the reference protocol.
        rng: a numpy Generator (give each rank its own seed).
    """

    def __init__(self, studies: Sequence[dict[str, np.ndarray]], patch_size: int, target: str,
                 rng: np.random.Generator) -> None:
        if not studies:
            raise TrainingDataError("no training studies to sample patches from")
        self.studies = list(studies)
        self.patch_size = patch_size
        self.target = target
        self.rng = rng

    def sample(self, batch_size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """``(inputs, targets, protocols)``: two (B, 1, p, p) float32 HU arrays and each input's protocol."""
        xs, ys, names = [], [], []
        for _ in range(batch_size):
            study = self.studies[self.rng.integers(len(self.studies))]
            protocol = sorted(study)[self.rng.integers(len(study))]
            z, h, w = study[self.target].shape
            p = min(self.patch_size or max(h, w), h, w)
            k, y, x = self.rng.integers(z), self.rng.integers(h - p + 1), self.rng.integers(w - p + 1)
            xs.append(study[protocol][k, y : y + p, x : x + p])
            ys.append(study[self.target][k, y : y + p, x : x + p])
            names.append(protocol)
        return np.stack(xs)[:, None], np.stack(ys)[:, None], names
