"""Checks a command runs before any cluster starts: files exist, model URIs resolve, specs load.

A long job should not start Ray, schedule workers and fail inside them over a typo. The CLI calls
these first; each failure is a :class:`PreflightError` whose one-line message names the option, the
value and what to do. Model URIs are looked up in the MLflow store in force without downloading
anything (``models:/name@alias``, ``models:/name/3``, ``models:/<logged model id>``, ``runs:/<id>/...``);
a local path must exist.

Example:
    >>> check_file("no-such-catalog.parquet", "--catalog")
    Traceback (most recent call last):
    ...
    ctharmony.cli.preflight.PreflightError: --catalog no-such-catalog.parquet: no such file
    >>> check_spec("cpu-small", ["loss.l1=3"]).loss.l1
    3.0
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("ctharmony.cli.preflight")

#: The reference segmenter a command uses when none is given.
CHAMPION_SEGMENTER = "models:/ctharmony-liver-unet@champion"


class PreflightError(ValueError):
    """An option that names nothing usable; the message is one line naming the option and the fix."""


def check_file(path: str | Path, option: str) -> Path:
    """``path`` as a Path, if it is an existing file."""
    target = Path(path).expanduser()
    if not target.is_file():
        raise PreflightError(f"{option} {path}: " + ("a folder, not a file" if target.is_dir() else "no such file"))
    return target


def check_catalog(path: str | Path, option: str = "--catalog") -> Path:
    """``path``, if it is a readable catalog (Parquet with the contract's columns: ``archive.read_catalog``)."""
    from ctharmony.archive import read_catalog
    from ctharmony.archive.catalog_table import CatalogError

    target = check_file(path, option)
    try:
        read_catalog(target)
    except CatalogError as err:
        raise PreflightError(f"{option}: {' '.join(str(err).split())}") from err
    return target


def check_folder(path: str | Path, option: str) -> Path:
    """``path`` as a Path, if it is an existing folder."""
    target = Path(path).expanduser()
    if not target.is_dir():
        raise PreflightError(f"{option} {path}: no such folder")
    return target


def check_spec(spec: str | Path, overrides: Sequence[str] = (), option: str = "--spec") -> Any:
    """The :class:`~ctharmony.config.ModelSpec` named by ``spec`` with ``overrides`` applied."""
    from ctharmony.config import ConfigError
    from ctharmony.models.registry import load_spec

    try:
        return load_spec(spec, list(overrides))
    except ConfigError as err:
        raise PreflightError(f"{option} {spec}: {' '.join(str(err).split())}") from err


def _registry_lookup(uri: str, client: Any) -> None:
    """Raise MlflowException when ``uri`` names no registered version or run."""
    if uri.startswith("runs:/"):
        client.get_run(uri[len("runs:/") :].strip("/").split("/", 1)[0])
        return
    if not uri.startswith("models:/"):
        return  # another artifact scheme: the loader decides
    ref = uri[len("models:/") :].strip("/")
    if "@" in ref:
        client.get_model_version_by_alias(*ref.split("@", 1))
        return
    name, _, version = ref.partition("/")
    if version.isdigit():
        client.get_model_version(name, version)
    elif version:  # models:/name/latest, or a stage
        if not client.search_model_versions(f"name='{name}'"):
            raise LookupError(f"no version of {name} is registered")
    elif not client.search_model_versions(f"name='{name}'"):
        client.get_logged_model(name)  # MLflow 3: models:/<model_id> names a logged model


def check_model(model: str, option: str) -> str:
    """``model`` (made absolute when a path) if it names a registered model, a run or an existing path."""
    from ctharmony.infer.model_source import MLFLOW_SCHEMES, resolve_model_source
    from ctharmony.loaders import ModelLoadError

    text = str(model).strip()
    if not text.startswith(MLFLOW_SCHEMES):
        try:
            return resolve_model_source(text).uri
        except ModelLoadError as err:
            raise PreflightError(f"{option}: {err}") from err
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from ctharmony import tracking

    uri = tracking.configure()
    try:
        _registry_lookup(text, MlflowClient(uri))
    except (MlflowException, LookupError) as err:
        raise PreflightError(f"{option} {text}: not found in the MLflow store {uri}") from err
    return text


def registered(model: str) -> bool:
    """Whether MLflow URI ``model`` resolves in the store in force."""
    try:
        check_model(model, "model")
    except PreflightError:
        return False
    return True


def resolve_segmenter(segmenter: str | None, spec: Any, *, required: bool) -> str | None:
    """The reference segmenter to use: the one given (or the spec's), else the registered champion.

    Args:
        segmenter: the ``--segmenter`` value, or None.
        spec: the harmonizer's :class:`~ctharmony.config.ModelSpec` (its ``train.segmenter``).
        required: whether the command cannot run without one (it is None otherwise).
    """
    given = segmenter or spec.train.segmenter
    if given:
        return check_model(given, "--segmenter" if segmenter else "train.segmenter")
    if registered(CHAMPION_SEGMENTER):
        log.info("no --segmenter: using the registered %s", CHAMPION_SEGMENTER)
        return CHAMPION_SEGMENTER
    if required:
        from ctharmony import tracking

        raise PreflightError(f"no --segmenter given and no {CHAMPION_SEGMENTER} in {tracking.tracking_uri()}: "
                             "pass --segmenter MODEL or run `ctharmony train-segmenter` first")
    return None


def needs_segmenter(spec: Any) -> bool:
    """Whether training ``spec`` needs a reference segmenter (its stage 2 uses the segmenter's features)."""
    return spec.loss.perceptual_net == "segmenter" and spec.train.epochs_stage2 > 0
