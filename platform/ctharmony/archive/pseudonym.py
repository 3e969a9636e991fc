"""Pseudonymous patient keys: a salted SHA-256 of the PatientID, never the ID itself.

The salt is :func:`ctharmony.salt.pseudonym_salt` (``$CTHARMONY_PSEUDONYM_SALT``, else one random salt
per data home); runs that must agree need the same salt.

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

from ctharmony.salt import SALT_ENV, SaltError, pinned_salt, pseudonym_salt, salt_path, salt_source

__all__ = ["KEY_LENGTH", "SALT_ENV", "SaltError", "patient_key", "pinned_salt", "pseudonym_salt", "salt_path",
           "salt_source"]

KEY_LENGTH = 24  # hex characters (96 bits)


def patient_key(patient_id: str | None, *, salt: str | None = None, study_uid: str = "") -> str:
    """The pseudonymous key of a patient (hex, ``KEY_LENGTH`` characters)."""
    identity = (patient_id or "").strip()
    if not identity:
        identity = f"study:{study_uid}" if study_uid else "unknown"
    salt = pseudonym_salt() if salt is None else salt
    digest = hashlib.sha256(f"{salt}\x00{identity}".encode("utf-8", "surrogateescape")).hexdigest()
    return digest[:KEY_LENGTH]
