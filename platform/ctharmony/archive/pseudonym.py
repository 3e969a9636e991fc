"""Pseudonymous patient keys: a salted SHA-256 of the PatientID, never the ID itself.

The salt comes from ``$CTHARMONY_PSEUDONYM_SALT``; without it the documented default
``DEFAULT_SALT`` is used, which only keeps keys stable between runs: anyone who knows the default
can test a guessed ID against a key, so set your own salt for real archives (and keep it secret,
and the same across runs that must agree).

A missing or empty PatientID is keyed by the StudyInstanceUID instead, so anonymous studies do not
all collapse into one "patient".

Example:
    >>> patient_key("PHANTOM-0003", salt="s") == patient_key("PHANTOM-0003", salt="s")
    True
    >>> len(patient_key("PHANTOM-0003", salt="s"))
    24
"""

from __future__ import annotations

import hashlib
import os

SALT_ENV = "CTHARMONY_PSEUDONYM_SALT"
DEFAULT_SALT = "ctharmony-default-salt-v1"
KEY_LENGTH = 24  # hex characters (96 bits)


def pseudonym_salt() -> str:
    """The salt in force: ``$CTHARMONY_PSEUDONYM_SALT`` or ``DEFAULT_SALT``."""
    return os.environ.get(SALT_ENV) or DEFAULT_SALT


def patient_key(patient_id: str | None, *, salt: str | None = None, study_uid: str = "") -> str:
    """The pseudonymous key of a patient (hex, ``KEY_LENGTH`` characters)."""
    identity = (patient_id or "").strip()
    if not identity:
        identity = f"study:{study_uid}" if study_uid else "unknown"
    salt = pseudonym_salt() if salt is None else salt
    digest = hashlib.sha256(f"{salt}\x00{identity}".encode("utf-8", "surrogateescape")).hexdigest()
    return digest[:KEY_LENGTH]
