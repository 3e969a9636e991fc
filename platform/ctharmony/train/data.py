"""Training data from the catalog: studies, a patient-level split, volumes and paired random patches.

A *study record* is one study's ok series by protocol, as plain lists so Ray Data rows keep one
Arrow schema (``protocols`` list<string>, ``files`` list<list<string>>, in the same order)::

    {"study_uid": ..., "patient_key": ..., "protocols": ["M40", "M80"], "files": [[...], [...]]}

Records feed the Train workers through Ray Data shards; each worker reads its studies' volumes once
(:func:`load_study`) and draws paired patches at the same location in every protocol
(:class:`PairedPatchSampler`): input any protocol, target the reference (M80).

Example::

    from ctharmony.archive import read_catalog
    records = study_records(read_catalog("catalog.parquet").series(), ("M40", "M80"))
    train, val = split_by_patient(records, val_fraction=0.25, seed=0)
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ctharmony.archive.catalog_table import SeriesRow
from ctharmony.archive.protocols import REFERENCE_PROTOCOL

log = logging.getLogger(__name__)


class TrainingDataError(ValueError):
    """The catalog cannot give what training needs; the message says what is missing."""


def study_records(rows: Sequence[SeriesRow], protocols: Sequence[str],
                  target: str = REFERENCE_PROTOCOL) -> list[dict[str, Any]]:
    """One record per study holding the target and at least one other wanted protocol (ok series only).

    ``rows`` are catalog rows (``read_catalog(path).series()``). When a study has several series of
    one protocol, the one with the most slices is used. Records come in study UID order.
    """
    wanted = {*protocols, target}
    studies: dict[str, list[SeriesRow]] = {}
    for row in rows:
        if row.status == "ok" and row.protocol in wanted:
            studies.setdefault(row.study_uid, []).append(row)
    records = []
    for study_uid in sorted(studies):
        group = studies[study_uid]
        files: dict[str, list[str]] = {}
        for row in sorted(group, key=lambda r: r.slices):  # stable: the last (most slices) wins
            files[row.protocol] = list(row.files)
        if target not in files or len(files) < 2:
            continue
        names = sorted(files)
        records.append({"study_uid": study_uid, "patient_key": group[0].patient_key,
                        "protocols": names, "files": [files[p] for p in names]})
    if not records:
        raise TrainingDataError(f"no study in the catalog has an ok {target} series plus another protocol")
    return records


def study_files(record: Mapping[str, Any]) -> dict[str, list[str]]:
    """``{protocol: files}`` of a study record (also as Ray Data hands it back: arrays for lists)."""
    return {str(p): [str(f) for f in files] for p, files in zip(record["protocols"], record["files"], strict=True)}


def study_key(record: Mapping[str, Any]) -> str:
    """A canonical text of a study's series (its protocols and files), e.g. for validation fingerprints."""
    return json.dumps(study_files(record), sort_keys=True)


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


def load_study(record: Mapping[str, Any], target: str = REFERENCE_PROTOCOL) -> dict[str, np.ndarray]:
    """Read a study's series as HU volumes (z, y, x); protocols whose grid differs from the target's are
    skipped with a warning."""
    files = study_files(record)
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
