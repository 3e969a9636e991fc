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

from ctharmony.lazy import lazy_exports

__all__ = [
    "HUModel",
    "IntensitySpec",
    "ModelSpec",
    "build",
    "build_discriminator",
    "build_network",
    "load_spec",
]

__getattr__ = lazy_exports(__name__, {
    "HUModel": "hu_model", "build": "registry", "build_discriminator": "registry", "build_network": "registry",
    "load_spec": "registry", "ModelSpec": "spec", "IntensitySpec": "spec",
})
