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

from typing import Any

from ctharmony.loaders.formats import (
    BaselineFile,
    CtharmonyFolder,
    LoaderError,
    MLflowModel,
    ModelFormat,
    OnnxFile,
    TorchScriptFile,
)

__all__ = ["FORMATS", "LoaderError", "ModelFormat", "find_format", "load_model", "register"]

#: Model formats, asked in order; the first that accepts a reference loads it.
FORMATS: list[ModelFormat] = [MLflowModel(), CtharmonyFolder(), TorchScriptFile(), OnnxFile(), BaselineFile()]


def register(model_format: ModelFormat, first: bool = True) -> None:
    """Add a format (a user's own), asked before the built-in ones unless ``first`` is False."""
    FORMATS.insert(0, model_format) if first else FORMATS.append(model_format)


def find_format(reference: str) -> ModelFormat | None:
    """The first format that accepts ``reference`` (an MLflow URI or a local path), or None."""
    return next((f for f in FORMATS if f.accepts(str(reference))), None)


def load_model(reference: Any) -> Any:
    """Load a harmonizer or segmenter from any accepted reference; a module passed in is returned as is.

    Raises:
        LoaderError: no format accepts the reference, or its format fails to load it (names both).
    """
    import torch

    if isinstance(reference, torch.nn.Module):
        return reference
    text = str(reference)
    model_format = find_format(text)
    if model_format is None:
        names = ", ".join(f"{f.name} ({f.description})" for f in FORMATS)
        raise LoaderError(f"model {text!r}: no model format accepts it; known formats: {names}")
    try:
        return model_format.load(text)
    except LoaderError:
        raise
    except Exception as err:  # noqa: BLE001 - any loader failure becomes one clear error
        raise LoaderError(f"cannot load {model_format.name} model {text!r}: {type(err).__name__}: {err}") from err
