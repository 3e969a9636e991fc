"""Where a conversion's models come from: an MLflow model URI or a local path, any format the registry knows.

``MODEL`` on the command line is ``models:/<name>@<alias>``, ``models:/<name>/<version>``,
``runs:/<run_id>/<path>`` or a local path: a saved ctharmony model, a user's TorchScript or ONNX file
(with its ``<file>.yaml`` sidecar), or a fitted baseline ``.npz`` / ``.json`` (:mod:`ctharmony.baselines`),
so every model runs through exactly the same pipeline. The model-loader registry
(:mod:`ctharmony.loaders`) decides which format a reference is. The driver checks it with
:func:`resolve_model_source` (a local path becomes absolute; a missing one, or one no format accepts,
is a clear error before any Ray work starts); each actor then loads it ONCE with
:func:`load_source` (:func:`ctharmony.loaders.load_model` on the driver's tracking URI), so every node reads the same
registry.

Example:
    >>> resolve_model_source("models:/ctharmony-harmonizer@champion").is_mlflow
    True
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ctharmony.loaders import ModelLoadError, find_format, load_model
from ctharmony.loaders.formats import MLFLOW_SCHEMES

__all__ = ["MLFLOW_SCHEMES", "ModelSource", "load_source", "model_identity", "resolve_model_source"]


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
        model: an MLflow model URI or a local path (any format of :mod:`ctharmony.loaders`).
        tracking_uri: the MLflow tracking URI actors must use (default: the one in force here).

    Raises:
        ModelLoadError: a local path that does not exist or that no format accepts, or an empty argument.
    """
    text = str(model).strip()
    if not text:
        raise ModelLoadError("empty model reference: give an MLflow URI (models:/name@alias) or a path")
    if text.startswith(MLFLOW_SCHEMES):
        if tracking_uri is None:
            from ctharmony import tracking

            tracking_uri = tracking.tracking_uri()
        return ModelSource(uri=text, tracking_uri=tracking_uri)
    path = Path(text).expanduser()
    if not path.exists():
        raise ModelLoadError(f"model {text!r}: no such file or folder (nor an MLflow URI: models:/, runs:/)")
    if find_format(str(path.resolve())) is None:
        raise ModelLoadError(f"model {text!r}: not a model any format accepts (an MLflow or ctharmony model folder, "
                               "a TorchScript .pt/.ts or .onnx file with its <file>.yaml, a baseline .npz/.json)")
    return ModelSource(uri=str(path.resolve()), tracking_uri=tracking_uri)


def load_source(source: ModelSource | Any) -> Any:
    """:func:`ctharmony.loaders.load_model` of a resolved source, on the driver's MLflow registry (every node)."""
    if isinstance(source, ModelSource):
        return load_model(source.uri, tracking_uri=source.tracking_uri)
    return load_model(source)


def model_identity(model: Any, fallback: str = "model") -> tuple[str, str]:
    """``(name, version)`` from ``model.info`` (the HUModel contract), with safe fallbacks."""
    info = getattr(model, "info", None) or {}
    name = str(info.get("name") or fallback)
    version = str(info.get("version") or "0")
    return name, version
