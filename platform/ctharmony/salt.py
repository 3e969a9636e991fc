"""The pseudonym salt: ``$CTHARMONY_PSEUDONYM_SALT``, else a random salt made once per data home.

The salt lives in ``<home>/pseudonym-salt`` (owner-only, 0600), so pseudonymous keys are stable between
runs but cannot be recomputed by anyone without that file. Runs that must agree (catalog, conversion,
other machines) need the same salt: share the file or set the variable on every node. A Ray worker never
makes a salt of its own (:func:`pseudonym_salt`); :func:`ctharmony.cluster.connect` resolves it on the
driver first. The keys themselves are :func:`ctharmony.archive.pseudonym.patient_key`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

from ctharmony.config import data_home

log = logging.getLogger(__name__)

SALT_ENV = "CTHARMONY_PSEUDONYM_SALT"
SALT_FILE = "pseudonym-salt"
_announced: set[Path] = set()


class SaltError(RuntimeError):
    """The salt file cannot be read or created; the message names it and why."""


def salt_path() -> Path:
    """Where this data home keeps its generated salt."""
    return data_home() / SALT_FILE


def pseudonym_salt() -> str:
    """The salt in force: ``$CTHARMONY_PSEUDONYM_SALT``, else this data home's salt file (made once).

    A Ray worker never creates the file: a salt made on another node would silently give other keys,
    so a worker without the variable or the file fails with :class:`SaltError`.
    """
    value = os.environ.get(SALT_ENV)
    if value:
        return value
    path = salt_path()
    created = False
    if not path.exists():
        if _in_ray_worker():
            raise SaltError(f"no pseudonym salt on this Ray worker: {path} does not exist and ${SALT_ENV} is "
                            "unset; pass the driver's salt explicitly or set the variable on every node")
        created = _create(path)
    salt = _read(path)
    if path not in _announced:
        _announced.add(path)
        log.info("pseudonym salt: %s %s (owner-only; set $%s to override)", "generated in" if created else "read from",
                 path, SALT_ENV)
    return salt


def _create(path: Path) -> bool:
    """Write a fresh random salt with mode 0600; False when another process made it first."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    except OSError as err:
        raise SaltError(f"cannot create the pseudonym salt file {path}: {err}") from err
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secrets.token_hex(32) + "\n")
    return True


def _read(path: Path) -> str:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        salt = path.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise SaltError(f"cannot read the pseudonym salt file {path}: {err}") from err
    if not salt:
        raise SaltError(f"the pseudonym salt file {path} is empty; delete it to generate a new salt "
                        "(keys made with the old salt will no longer match)")
    if mode & 0o077:
        log.warning("pseudonym salt file %s is readable by others (mode %o): run chmod 600 on it", path, mode)
    return salt


def _in_ray_worker() -> bool:
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return False
    return ray.get_runtime_context().worker.mode == ray.WORKER_MODE


def salt_source() -> str:
    """Where the salt in force comes from, for people (never the salt itself)."""
    if os.environ.get(SALT_ENV):
        return f"${SALT_ENV}"
    path = salt_path()
    return f"{path}" if path.exists() else f"{path} (generated on first use)"


@contextlib.contextmanager
def pinned_salt(salt: str) -> Iterator[None]:
    """Use ``salt`` (as ``$CTHARMONY_PSEUDONYM_SALT``, which Ray workers started meanwhile inherit) inside the
    block, whatever the data home holds; the variable's previous state comes back afterwards.

    For archives with no real patient (simulations), whose keys and train/validation splits must be the same
    on every machine. Example:
        >>> with pinned_salt("fixed"):
        ...     pseudonym_salt()
        'fixed'
    """
    previous = os.environ.get(SALT_ENV)
    os.environ[SALT_ENV] = salt
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(SALT_ENV, None)
        else:
            os.environ[SALT_ENV] = previous
