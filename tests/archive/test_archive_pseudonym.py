"""Pseudonymous patient keys."""

from __future__ import annotations

from ctharmony.archive.pseudonym import DEFAULT_SALT, SALT_ENV, patient_key, pseudonym_salt


def test_salted_and_stable(monkeypatch):
    monkeypatch.delenv(SALT_ENV, raising=False)
    assert pseudonym_salt() == DEFAULT_SALT
    default = patient_key("PHANTOM-0003")
    monkeypatch.setenv(SALT_ENV, "site-secret")
    salted = patient_key("PHANTOM-0003")
    assert salted != default and salted == patient_key("PHANTOM-0003", salt="site-secret")
    assert "PHANTOM" not in salted and len(salted) == 24
    assert patient_key("PHANTOM-0004") != salted


def test_empty_id_keyed_by_study():
    assert patient_key("", salt="s", study_uid="1.2") != patient_key("", salt="s", study_uid="1.3")
    assert patient_key(" ", salt="s", study_uid="1.2") == patient_key(None, salt="s", study_uid="1.2")
