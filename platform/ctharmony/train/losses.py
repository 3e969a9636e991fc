"""Losses of the Real-ESRGAN recipe: L1, perceptual (feature L1, mean over h·w·d) and vanilla GAN.

Example:
    >>> import torch
    >>> gan_loss(torch.zeros(1, 1, 4, 4), real=True).item() > 0
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ctharmony.models.hu_model import rewindow
from ctharmony.models.spec import IntensitySpec


def l1_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference over the image."""
    return F.l1_loss(output, target)


def gan_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Vanilla GAN loss (binary cross-entropy on logits) towards the real or the fake label."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


class PerceptualLoss(nn.Module):
    """Distance between a frozen extractor's feature maps of output and target, normalised by h·w·d.

    Args:
        extractor: maps normalised (N, 1, H, W) images to features (frozen, eval).
        to_extractor: maps the generator's normalised images into the extractor's input range (e.g.
            re-windowing for the segmenter's intensity spec); identity by default.
    """

    def __init__(self, extractor: nn.Module, to_extractor: nn.Module | None = None) -> None:
        super().__init__()
        self.extractor = extractor
        self.to_extractor = to_extractor or nn.Identity()

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target_features = self.extractor(self.to_extractor(target))
        return F.l1_loss(self.extractor(self.to_extractor(output)), target_features)


class Rewindow(nn.Module):
    """Map images normalised with one HU window onto another window's [0, 1] (differentiable).

    The arithmetic is :func:`ctharmony.models.hu_model.rewindow`, the models' own normalisation.

    Args:
        source, dest: the two windows, as ``IntensitySpec`` s or ``(hu_min, hu_max)`` pairs.
    """

    def __init__(self, source: IntensitySpec | tuple[float, float], dest: IntensitySpec | tuple[float, float]) -> None:
        super().__init__()
        self.source, self.dest = _window(source), _window(dest)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rewindow(x, self.source, self.dest)


def _window(window: IntensitySpec | tuple[float, float]) -> IntensitySpec:
    return window if isinstance(window, IntensitySpec) else IntensitySpec(float(window[0]), float(window[1]))
