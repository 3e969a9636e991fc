"""The model-loader registry: each model format says whether it accepts a reference, then loads it.

As MONAI Deploy's model factory asks each ``Model`` class whether it ``accept``s a path, :func:`load_model`
asks the formats of :data:`FORMATS` in order (MLflow URI or model folder, ctharmony model folder,
TorchScript file, ONNX file, fitted baseline) and loads the reference with the first that accepts it.
Every model it returns is a ``torch.nn.Module`` with ``info`` mapping HU to HU (harmonizer) or to a
liver probability (segmenter); see :mod:`ctharmony.models.interface`.

A TorchScript or ONNX file needs its HU window: a sidecar YAML beside it, ``<file>.yaml`` (e.g.
``liver.onnx.yaml``), read into :class:`~ctharmony.models.spec.ExternalSpec`::

    kind: segmenter
    intensity: {hu_min: -160, hu_max: 240}
    dims: 2            # 3: the network takes the whole volume (1, 1, Z, H, W)
    output: logits     # or probability

Example:
    >>> find_format("models:/ctharmony-liver-unet@champion").name
    'mlflow'

    With an ONNX file and its sidecar YAML at hand (not run as a doctest)::

        model = load_model("liver.onnx")
"""

from __future__ import annotations

import os
from typing import Any

from ctharmony.loaders.formats import (
    MLFLOW_SCHEMES,
    BaselineFile,
    CtharmonyFolder,
    MLflowModel,
    ModelFormat,
    OnnxFile,
    TorchScriptFile,
)
from ctharmony.models.errors import ModelLoadError

__all__ = ["FORMATS", "ModelFace", "ModelFormat", "ModelLoadError", "find_format", "load_model", "register"]

#: Model formats, asked in order; the first that accepts a reference loads it.
FORMATS: list[ModelFormat] = [MLflowModel(), CtharmonyFolder(), TorchScriptFile(), OnnxFile(), BaselineFile()]


def register(model_format: ModelFormat, first: bool = True) -> None:
    """Add a format (a user's own), asked before the built-in ones unless ``first`` is False."""
    FORMATS.insert(0, model_format) if first else FORMATS.append(model_format)


def find_format(reference: str) -> ModelFormat | None:
    """The first format that accepts ``reference`` (an MLflow URI or a local path), or None."""
    return next((f for f in FORMATS if f.accepts(str(reference))), None)


def load_model(reference: Any, *, tracking_uri: str | None = None) -> Any:
    """Load a harmonizer, segmenter or baseline from any accepted reference (the one public model loader).

    A module passed in is returned as is. ``tracking_uri`` points MLflow at a given store first (what a
    Ray actor on another node needs: the driver's registry).

    Returns:
        a :class:`ModelFace`: a ``torch.nn.Module`` with ``info``, HU in, HU or liver probability out.

    Raises:
        ModelLoadError: no format accepts the reference, or its format fails to load it (names both).
    """
    import torch

    if isinstance(reference, torch.nn.Module):
        return reference
    text = str(reference)
    if tracking_uri and text.startswith(MLFLOW_SCHEMES):
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    model_format = find_format(text)
    if model_format is None and not text.startswith(MLFLOW_SCHEMES) and not os.path.exists(text):
        raise ModelLoadError(f"model {text!r}: no such file or folder (nor an MLflow URI: models:/, runs:/)")
    if model_format is None:
        names = ", ".join(f"{f.name} ({f.description})" for f in FORMATS)
        raise ModelLoadError(f"model {text!r}: no model format accepts it; known formats: {names}")
    try:
        return model_format.load(text)
    except ModelLoadError:
        raise
    except Exception as err:  # noqa: BLE001 - any loader failure becomes one clear error
        raise ModelLoadError(f"cannot load {model_format.name} model {text!r}: {type(err).__name__}: {err}") from err


def __getattr__(name: str) -> Any:
    if name == "ModelFace":  # the protocol lives with the model interface (torch): imported on first use
        from ctharmony.models.interface import ModelFace

        return ModelFace
    raise AttributeError(f"module 'ctharmony.loaders' has no attribute {name!r}")
