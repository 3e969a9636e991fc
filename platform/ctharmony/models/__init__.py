"""Networks: HFS generator, U-Net SN discriminator, perceptual extractors, liver U-Net, ``HUModel``.

``build(name_or_spec)`` builds a model from ``models/<name>.yaml``; :mod:`ctharmony.models.io` loads,
saves and logs models to MLflow.
"""

from __future__ import annotations

from ctharmony.models.hu_model import HUModel
from ctharmony.models.registry import build, build_discriminator, build_network, load_spec

__all__ = ["HUModel", "build", "build_discriminator", "build_network", "load_spec"]
