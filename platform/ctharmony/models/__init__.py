"""Networks and their specs: HFS generator, U-Net SN discriminator, perceptual extractors, liver U-Net, ``HUModel``.

A leaf of the package: it imports nothing else of ctharmony. ``build(name_or_spec)`` builds a model from
the packaged ``ctharmony/specs/<name>.yaml``; :mod:`ctharmony.models.io` saves and loads model folders
(MLflow logging lives in :mod:`ctharmony.tracking.models`). Names load on first use, so importing a spec
never pulls in torch.

Example:
    >>> from ctharmony.models import build
    >>> build("liver-unet").kind
    'segmenter'
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "HUModel": "hu_model", "build": "registry", "build_discriminator": "registry", "build_network": "registry",
    "load_spec": "registry", "ModelSpec": "spec", "IntensitySpec": "spec",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"ctharmony.models.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'ctharmony.models' has no attribute {name!r}")
