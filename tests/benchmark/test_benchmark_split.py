"""The benchmark's train / validation split is the same in two fresh data homes (its salt is pinned)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from ctharmony.archive.catalog import build_catalog, read_catalog
from ctharmony.archive.pseudonym import SALT_ENV, pinned_salt
from ctharmony.benchmark.design import BenchmarkPlan
from ctharmony.benchmark.workflow import simulate_subset
from ctharmony.train.data import split_by_patient, study_records


def test_the_split_does_not_depend_on_the_data_home(tmp_path, monkeypatch, ray_local) -> None:
    plan = BenchmarkPlan(train_patients=4, slices=2, size=48)
    archive = tmp_path / "archive-train"
    simulate_subset(archive, plan.training(), plan, ("M40", "M80"))

    def catalog_in(home: Path, pinned: bool) -> tuple[set[str], list[list[str]]]:
        """Patient keys and, per training seed, the validation studies, cataloguing in a fresh ``home``."""
        monkeypatch.setenv("CTHARMONY_HOME", str(home))
        monkeypatch.delenv(SALT_ENV, raising=False)
        with pinned_salt(plan.salt) if pinned else contextlib.nullcontext():
            build_catalog(archive / "dicom", home / "catalog.parquet", progress=False)
        rows = read_catalog(home / "catalog.parquet").series()
        records = study_records(rows, ("M40",))
        splits = [sorted(r["study_uid"] for r in split_by_patient(records, 0.25, seed)[1]) for seed in plan.seeds]
        return {r.patient_key for r in rows}, splits

    keys_a, splits_a = catalog_in(tmp_path / "home-a", pinned=True)
    keys_b, splits_b = catalog_in(tmp_path / "home-b", pinned=True)
    assert keys_a == keys_b and len(keys_a) == 4 and splits_a == splits_b
    assert not (tmp_path / "home-a" / "pseudonym-salt").exists()  # the home's own salt is never made or read
    assert len({tuple(s) for s in splits_a}) > 1  # the training seed, not the home, picks the patients
    keys_c, _ = catalog_in(tmp_path / "home-c", pinned=False)  # each home's random salt: other keys, other splits
    keys_d, _ = catalog_in(tmp_path / "home-d", pinned=False)
    assert keys_c != keys_d and not keys_c & keys_a
