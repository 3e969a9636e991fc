"""Where a conversion's models come from: an MLflow model URI or a local path.

``MODEL`` on the command line is ``models:/<name>@<alias>``, ``models:/<name>/<version>``,
``runs:/<run_id>/<path>`` or a local path (a saved model, or a fitted baseline ``.npz`` / ``.json``
from :mod:`ctharmony.evaluate.baselines`, so baselines run through exactly the same pipeline). The driver
checks it with :func:`resolve_model_source` (a local path becomes absolute, a missing one is a clear
error before any Ray work starts); each
actor then loads it ONCE with :func:`load_hu_model`, pointing MLflow at the driver's tracking URI so
every node reads the same registry.

Example:
    >>> resolve_model_source("models:/ctharmony-harmonizer@champion").is_mlflow
    True
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

MLFLOW_SCHEMES = ("models:/", "runs:/", "mlflow-artifacts:/")


class ModelSourceError(ValueError):
    """A MODEL argument that names nothing loadable; the message names it and the reason."""


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """A model reference resolved in the driver, safe to ship to every actor."""

    uri: str
    tracking_uri: str | None = None

    @property
    def is_mlflow(self) -> bool:
        return self.uri.startswith(MLFLOW_SCHEMES)


def resolve_model_source(model: str | Path, tracking_uri: str | None = None) -> ModelSource:
    """Check a MODEL argument in the driver.

    Args:
        model: an MLflow model URI or a local path (file or folder written by ``save_model``).
        tracking_uri: the MLflow tracking URI actors must use (default: the one in force here).

    Raises:
        ModelSourceError: a local path that does not exist, or an empty argument.
    """
    text = str(model).strip()
    if not text:
        raise ModelSourceError("empty model reference: give an MLflow URI (models:/name@alias) or a path")
    if text.startswith(MLFLOW_SCHEMES):
        if tracking_uri is None:
            from ctharmony import tracking

            tracking_uri = tracking.tracking_uri()
        return ModelSource(uri=text, tracking_uri=tracking_uri)
    path = Path(text).expanduser()
    if not path.exists():
        raise ModelSourceError(f"model {text!r}: no such file or folder (nor an MLflow URI: models:/, runs:/)")
    return ModelSource(uri=str(path.resolve()), tracking_uri=tracking_uri)


def load_hu_model(source: ModelSource | str | Any) -> Any:
    """Load an ``HUModel`` (``torch.nn.Module``) from a source; a module passed in is returned as is.

    Raises:
        ModelSourceError: the model cannot be loaded (names the reference and the cause).
    """
    import torch

    if isinstance(source, torch.nn.Module):
        return source
    if not isinstance(source, ModelSource):
        source = resolve_model_source(source)
    if source.is_mlflow and source.tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = source.tracking_uri  # the driver's registry, on every node
    from ctharmony.evaluate.baselines import BASELINE_SUFFIXES, load_baseline
    from ctharmony.models.io import load_model

    loader = load_baseline if Path(source.uri).suffix.lower() in BASELINE_SUFFIXES else load_model
    try:
        return loader(source.uri)
    except Exception as err:  # noqa: BLE001 - any loader failure becomes one clear error
        raise ModelSourceError(f"cannot load model {source.uri!r}: {type(err).__name__}: {err}") from err


def model_identity(model: Any, fallback: str = "model") -> tuple[str, str]:
    """``(name, version)`` from ``model.info`` (the HUModel contract), with safe fallbacks."""
    info = getattr(model, "info", None) or {}
    name = str(info.get("name") or fallback)
    version = str(info.get("version") or "0")
    return name, version
