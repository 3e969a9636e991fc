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
    """Map images normalised with one HU window onto another window's [0, 1] (differentiable)."""

    def __init__(self, source: tuple[float, float], dest: tuple[float, float]) -> None:
        super().__init__()
        self.source, self.dest = source, dest

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hu = x * (self.source[1] - self.source[0]) + self.source[0]
        return ((hu - self.dest[0]) / (self.dest[1] - self.dest[0])).clamp(0.0, 1.0)
