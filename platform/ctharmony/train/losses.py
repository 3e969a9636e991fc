"""Losses of the Real-ESRGAN recipe: L1, perceptual (feature L1, mean over h·w·d) and vanilla GAN, plus a
noise-texture loss (band noise powers in uniform regions) that keeps L1 from trading the reference's noise for
smoothness.

Example:
    >>> import torch
    >>> gan_loss(torch.zeros(1, 1, 4, 4), real=True).item() > 0
    True
    >>> g = torch.Generator().manual_seed(0)
    >>> liver = 0.35 + 0.005 * torch.randn(2, 1, 48, 48, generator=g)  # ~50 HU, noise SD 15 HU, window 3072 HU
    >>> smooth = 0.35 + 0.0025 * torch.randn(2, 1, 48, 48, generator=g)  # half the noise: a quarter of its power
    >>> bool(1.2 < texture_loss(smooth, liver) < 1.5), float(texture_loss(liver, liver))  # |log 1/4| = 1.39
    (True, 0.0)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ctharmony.models.hu_model import rewindow
from ctharmony.models.spec import IntensitySpec

TEXTURE_SIGMAS = (0.5, 1.0, 2.0, 4.0)  # px: four difference-of-Gaussian bands (image - σ0.5, ..., σ2 - σ4)


def l1_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference over the image."""
    return F.l1_loss(output, target)


def gan_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Vanilla GAN loss (binary cross-entropy on logits) towards the real or the fake label."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, 1, H, W) images (reflected borders; radius 3σ, at most the image)."""
    radius = max(1, min(int(math.ceil(3.0 * sigma)), images.shape[-1] - 1, images.shape[-2] - 1))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    x = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    return F.conv2d(x, kernel.view(1, 1, -1, 1))


def flat_regions(target: torch.Tensor, hu_per_unit: float, edge_hu_per_px: float = 15.0, margin_px: int = 2,
                 air_hu: float = -900.0, hu_min: float = -1024.0) -> torch.Tensor:
    """Where the target has no structure: the gradient of its σ = 2 px blur below ``edge_hu_per_px``, at
    least ``margin_px`` from any edge, and not air. (N, 1, H, W) bool; no gradient flows through it."""
    with torch.no_grad():
        smooth = gaussian_blur(target, 2.0) * hu_per_unit
        gy = F.pad(smooth[..., 1:, :] - smooth[..., :-1, :], (0, 0, 0, 1), mode="replicate")
        gx = F.pad(smooth[..., :, 1:] - smooth[..., :, :-1], (0, 1, 0, 0), mode="replicate")
        edges = (torch.sqrt(gy**2 + gx**2) > edge_hu_per_px) | (target * hu_per_unit + hu_min < air_hu)
        near_edge = F.max_pool2d(edges.float(), 2 * margin_px + 1, stride=1, padding=margin_px) > 0
        return ~near_edge


def band_noise_power(images: torch.Tensor, flat: torch.Tensor, sigmas: tuple[float, ...] = TEXTURE_SIGMAS
                     ) -> torch.Tensor:
    """Mean power of difference-of-Gaussian bands (finest first) over the ``flat`` pixels: (N, bands),
    a coarse noise power spectrum of each image measured where the anatomy is uniform."""
    levels = [images] + [gaussian_blur(images, s) for s in sigmas]
    weight = flat.to(images.dtype)
    count = weight.sum(dim=(-3, -2, -1)).clamp(min=1.0)
    return torch.stack([((fine - coarse).square() * weight).sum(dim=(-3, -2, -1)) / count
                        for fine, coarse in zip(levels[:-1], levels[1:], strict=True)], dim=-1)


def texture_loss(output: torch.Tensor, target: torch.Tensor, hu_per_unit: float = 3072.0, hu_min: float = -1024.0,
                 min_flat_px: int = 64) -> torch.Tensor:
    """Mean absolute difference of log band noise powers of output and target in the target's flat regions.

    Each image is compared with its own target, so the loss asks for the target's noise power in every
    band (its magnitude and texture), not for its noise realisation, which L1 averages away into a smooth
    image. Images with fewer than ``min_flat_px`` flat pixels do not count; zero when none has them.
    """
    flat = flat_regions(target, hu_per_unit, hu_min=hu_min)
    usable = flat.sum(dim=(-3, -2, -1)) >= min_flat_px
    if not bool(usable.any()):
        return output.new_zeros(())
    eps = 1e-12
    out_power = band_noise_power(output[usable], flat[usable])
    target_power = band_noise_power(target[usable], flat[usable])
    return (torch.log(out_power + eps) - torch.log(target_power + eps)).abs().mean()


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
