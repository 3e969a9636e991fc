"""Pseudonymous patient keys and the per-home random salt."""

from __future__ import annotations

import stat

import pytest

from ctharmony.archive.pseudonym import SALT_ENV, SaltError, patient_key, pseudonym_salt, salt_path


@pytest.fixture
def fresh_home(tmp_path, monkeypatch):
    monkeypatch.setenv("CTHARMONY_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(SALT_ENV, raising=False)
    return tmp_path / "home"


def test_salt_is_generated_once_per_home_owner_only_and_logged_once(fresh_home, caplog):
    caplog.set_level("INFO", logger="ctharmony.salt")
    first = pseudonym_salt()
    path = salt_path()
    assert path.parent == fresh_home and path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32 and first == path.read_text(encoding="utf-8").strip()
    assert pseudonym_salt() == first  # reused, not regenerated
    notes = [r.getMessage() for r in caplog.records if "pseudonym salt" in r.getMessage()]
    assert len(notes) == 1 and str(path) in notes[0] and first not in notes[0]


def test_each_home_gets_its_own_salt_and_the_variable_wins(fresh_home, tmp_path, monkeypatch):
    key_here = patient_key("PHANTOM-0003")
    monkeypatch.setenv("CTHARMONY_HOME", str(tmp_path / "other-home"))
    assert patient_key("PHANTOM-0003") != key_here
    monkeypatch.setenv(SALT_ENV, "site-secret")
    salted = patient_key("PHANTOM-0003")
    assert salted == patient_key("PHANTOM-0003", salt="site-secret") != key_here
    assert "PHANTOM" not in salted and len(salted) == 24
    assert patient_key("PHANTOM-0004") != salted


def test_unreadable_salt_files_are_named(fresh_home):
    fresh_home.mkdir(parents=True)
    salt_path().write_text("  \n", encoding="utf-8")
    with pytest.raises(SaltError, match="pseudonym-salt is empty"):
        pseudonym_salt()


def test_empty_id_keyed_by_study():
    assert patient_key("", salt="s", study_uid="1.2") != patient_key("", salt="s", study_uid="1.3")
    assert patient_key(" ", salt="s", study_uid="1.2") == patient_key(None, salt="s", study_uid="1.2")


def test_ray_workers_read_the_drivers_salt_and_never_make_their_own(ray_local, tmp_path, monkeypatch):
    ray = ray_local
    monkeypatch.delenv(SALT_ENV, raising=False)
    driver_salt = pseudonym_salt()  # the shared test cluster's workers inherited this session's home

    @ray.remote(num_cpus=0)
    def worker_salt(home: str | None) -> str:
        import os

        from ctharmony.archive.pseudonym import pseudonym_salt

        before = os.environ.get("CTHARMONY_HOME", "")
        os.environ["CTHARMONY_HOME"] = home or before  # `home`: a node whose home holds no salt file
        try:
            return pseudonym_salt()
        finally:
            os.environ["CTHARMONY_HOME"] = before

    assert ray.get(worker_salt.remote(None)) == driver_salt
    with pytest.raises(ray.exceptions.RayTaskError, match="no pseudonym salt on this Ray worker"):
        ray.get(worker_salt.remote(str(tmp_path / "empty-home")))
    assert not (tmp_path / "empty-home").exists()
