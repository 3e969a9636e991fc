"""Training data from the catalog: studies, a patient-level split, volumes and paired random patches.

A *study record* is one study's ok series by protocol, as plain lists so Ray Data rows keep one
Arrow schema (``protocols`` list<string>, ``files`` list<list<string>>, in the same order)::

    {"study_uid": ..., "patient_key": ..., "protocols": ["M40", "M80"], "files": [[...], [...]]}

Records feed the Train workers through Ray Data shards; each worker reads its studies' volumes once
(:func:`load_study`: every input resampled onto the reference's slice planes in physical space, or refused,
:mod:`ctharmony.train.pairing`) and draws paired patches at the same location in every protocol, where
both exist (:class:`PairedPatchSampler`): input any protocol, target the reference (M80).

Example::

    from ctharmony.archive import read_catalog
    records = study_records(read_catalog("catalog.parquet").series(), ("M40", "M80"))
    train, val = split_by_patient(records, val_fraction=0.25, seed=0)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ctharmony.archive.catalog_table import SeriesRow
from ctharmony.archive.protocols import REFERENCE_PROTOCOL
from ctharmony.archive.volume import Volume
from ctharmony.train.pairing import PairOutcome

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


def read_volume(files: Sequence[str]) -> Volume:
    """A series as a Volume in the canonical in-plane layout (``ctharmony.archive.read_series``; its errors
    name the file), HU float32."""
    from ctharmony.archive import read_series
    from ctharmony.archive.orientation import to_canonical

    # the canonical in-plane layout, as the networks see slices at inference (ctharmony.infer.predictors)
    volume = to_canonical(read_series(files))
    return dataclasses.replace(volume, hu=volume.hu.astype(np.float32, copy=False))


def read_hu(files: Sequence[str]) -> np.ndarray:
    """HU volume (z, y, x) float32 of a series, in the canonical in-plane layout."""
    return read_volume(files).hu


class PairedStudy(dict):
    """One study's training pairs: ``{protocol: HU (z, y, x) on the target's grid}``, target included.

    ``coverage[protocol]`` (bool, same shape) marks where an input resampled from another grid exists (no
    entry: everywhere); ``outcomes`` says, per input series, whether it was used or refused and why.
    """

    def __init__(self, volumes: Mapping[str, np.ndarray], coverage: Mapping[str, np.ndarray] | None = None,
                 outcomes: Sequence[PairOutcome] = ()) -> None:
        super().__init__(volumes)
        self.coverage = dict(coverage or {})
        self.outcomes = list(outcomes)


def load_study(record: Mapping[str, Any], target: str = REFERENCE_PROTOCOL) -> PairedStudy:
    """Read a study's series and pair each input with the target in physical space
    (:func:`ctharmony.train.pairing.pair_series`); refused inputs are left out with a warning naming the
    study (pseudonymous key) and the reason."""
    from ctharmony.train.pairing import pair_series

    files = study_files(record)
    reference = read_volume(files[target])
    volumes, coverage, outcomes = {target: reference.hu}, {}, []
    for protocol, paths in sorted(files.items()):
        if protocol == target:
            continue
        outcome, resampled = pair_series(read_volume(paths), reference, protocol, target)
        outcomes.append(outcome)
        if resampled is None:
            log.warning("study %s of patient %s: %s refused: %s", study_label(record), record.get("patient_key", "?"),
                        protocol, outcome.reason)
            continue
        volumes[protocol] = resampled.hu
        if not resampled.coverage.all():
            coverage[protocol] = resampled.coverage
    return PairedStudy(volumes, coverage, outcomes)


def study_label(record: Mapping[str, Any]) -> str:
    """A short pseudonymous label of a study for logs and reports (a hash of its UID, never the UID)."""
    return hashlib.sha256(str(record["study_uid"]).encode()).hexdigest()[:10]


def patch_origins(coverage: np.ndarray, size: int) -> np.ndarray:
    """(n, 3) (slice, row, column) of every ``size`` x ``size`` patch lying wholly inside ``coverage``."""
    z, h, w = coverage.shape
    sums = np.zeros((z, h + 1, w + 1), np.int64)
    sums[:, 1:, 1:] = coverage.astype(np.int64).cumsum(1).cumsum(2)
    window = sums[:, size:, size:] - sums[:, :-size, size:] - sums[:, size:, :-size] + sums[:, :-size, :-size]
    return np.argwhere(window == size * size)


class PairedPatchSampler:
    """Random paired patches: same (slice, y, x) window in an input protocol and in the target.

    A study's input with a coverage mask (:class:`PairedStudy`) gives patches only where it covers the
    target; an input covering no whole patch is left out with a warning.

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
        self._names: list[list[str]] = []
        self._origins: list[dict[str, np.ndarray]] = []
        for index, study in enumerate(self.studies):
            names, origins = [], {}
            for protocol in sorted(study):
                cover = getattr(study, "coverage", {}).get(protocol)
                if cover is not None:
                    origins[protocol] = patch_origins(cover, self._patch(study))
                    if not len(origins[protocol]):
                        log.warning("training study %d: %s covers no whole %d px patch of %s; left out", index,
                                    protocol, self._patch(study), target)
                        continue
                names.append(protocol)
            self._names.append(names)
            self._origins.append(origins)

    def _patch(self, study: Mapping[str, np.ndarray]) -> int:
        _, h, w = study[self.target].shape
        return min(self.patch_size or max(h, w), h, w)

    def sample(self, batch_size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """``(inputs, targets, protocols)``: two (B, 1, p, p) float32 HU arrays and each input's protocol."""
        xs, ys, names = [], [], []
        for _ in range(batch_size):
            index = self.rng.integers(len(self.studies))
            study, choices = self.studies[index], self._names[index]
            protocol = choices[self.rng.integers(len(choices))]
            z, h, w = study[self.target].shape
            p = self._patch(study)
            origins = self._origins[index].get(protocol)
            if origins is None:  # covered everywhere
                k, y, x = self.rng.integers(z), self.rng.integers(h - p + 1), self.rng.integers(w - p + 1)
            else:
                k, y, x = origins[self.rng.integers(len(origins))]
            xs.append(study[protocol][k, y : y + p, x : x + p])
            ys.append(study[self.target][k, y : y + p, x : x + p])
            names.append(protocol)
        return np.stack(xs)[:, None], np.stack(ys)[:, None], names
