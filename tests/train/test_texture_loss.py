"""The noise-texture loss: band powers against scipy, flat regions, and what it asks of the generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from ctharmony.config import LossSpec
from ctharmony.models.discriminator import UNetDiscriminatorSN
from ctharmony.models.generator import HFSGenerator
from ctharmony.train.gan import stage2_step
from ctharmony.train.losses import TEXTURE_SIGMAS, band_noise_power, flat_regions, gaussian_blur, texture_loss

WINDOW = 3072.0  # HU per normalised unit (the harmonizers' window, -1024..2048)


def _normalise(hu: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(((hu + 1024.0) / WINDOW).astype(np.float32))[:, None]


def _liver_slices(noise_sd: float, seed: int, count: int = 4, size: int = 96) -> np.ndarray:
    """(count, size, size) HU: a 50 HU disk in -100 HU fat inside air, with white noise of ``noise_sd`` HU."""
    yy, xx = np.mgrid[:size, :size] - size / 2
    radius = np.hypot(yy, xx)
    hu = np.where(radius < size * 0.45, -100.0, -1000.0)
    hu = np.where(radius < size * 0.3, 50.0, hu)
    noise = np.random.default_rng(seed).normal(0.0, noise_sd, (count, size, size))
    return hu[None] + noise * (radius < size * 0.45)


def test_gaussian_blur_and_band_powers_match_scipy() -> None:
    images = torch.rand(2, 1, 40, 40)
    for sigma in TEXTURE_SIGMAS:
        reference = ndimage.gaussian_filter(images.numpy(), (0, 0, sigma, sigma), mode="mirror", truncate=3.0)
        assert np.allclose(gaussian_blur(images, sigma).numpy(), reference, atol=1e-5)
    flat = torch.zeros(2, 1, 40, 40, dtype=torch.bool)
    flat[..., 10:30, 5:35] = True
    levels = [images.numpy()] + [ndimage.gaussian_filter(images.numpy(), (0, 0, s, s), mode="mirror", truncate=3.0)
                                 for s in TEXTURE_SIGMAS]
    bands = [a - b for a, b in zip(levels[:-1], levels[1:], strict=True)]
    expected = np.stack([(band**2)[..., 10:30, 5:35].mean(axis=(1, 2, 3)) for band in bands], axis=-1)
    assert np.allclose(band_noise_power(images, flat).numpy(), expected, rtol=1e-4)


def test_flat_regions_keep_uniform_tissue_and_drop_edges_and_air() -> None:
    target = _normalise(_liver_slices(15.0, seed=0, count=1))
    flat = flat_regions(target, WINDOW)[0, 0].numpy()
    yy, xx = np.mgrid[:96, :96] - 48
    radius = np.hypot(yy, xx)
    assert flat[radius < 20].mean() > 0.95  # deep inside the liver disk
    assert not flat[np.abs(radius - 28.8) < 1.5].any()  # the liver-fat boundary
    assert not flat[radius > 45].any()  # air


def test_texture_loss_measures_the_noise_power_ratio_not_the_realisation() -> None:
    target = _normalise(_liver_slices(15.0, seed=1))
    same_texture = _normalise(_liver_slices(15.0, seed=2))  # another realisation of the same noise
    half_noise = _normalise(_liver_slices(7.5, seed=3))
    assert float(texture_loss(same_texture, target, WINDOW)) < 0.1
    # white noise at half the SD has a quarter of the power: exactly so in the fine bands; the coarse ones
    # also hold anatomy near the region's border (the same in both), so the loss is at most |log 1/4|
    flat = flat_regions(target, WINDOW)
    ratio = (band_noise_power(half_noise, flat) / band_noise_power(target, flat)).mean(0)
    assert ratio[:2].numpy() == pytest.approx([0.25, 0.25], rel=0.1)
    assert 0.7 < float(texture_loss(half_noise, target, WINDOW)) <= np.log(4.0) + 0.05
    blurred = gaussian_blur(same_texture, 1.5)  # same noise, smoothed: the fine bands lose most of their power
    assert float(texture_loss(blurred, target, WINDOW)) > float(texture_loss(half_noise, target, WINDOW))
    l1_smooth = torch.nn.functional.l1_loss(_normalise(_liver_slices(0.0, seed=0)), target)
    l1_noisy = torch.nn.functional.l1_loss(same_texture, target)
    assert l1_smooth < l1_noisy  # why L1 alone prefers a smooth image, and the texture loss is needed


def test_texture_loss_is_zero_without_flat_regions_and_pushes_a_smooth_output_towards_noise() -> None:
    air = torch.zeros(2, 1, 32, 32)
    assert float(texture_loss(air + 0.01 * torch.rand_like(air), air, WINDOW)) == 0.0
    target = _normalise(_liver_slices(15.0, seed=4))
    smooth = _normalise(_liver_slices(0.0, seed=0))
    noise = _normalise(_liver_slices(15.0, seed=5)) - smooth
    gain = torch.tensor(0.2, requires_grad=True)  # output = smooth + gain * noise: the loss must raise the gain
    texture_loss(smooth + gain * noise, target, WINDOW).backward()
    assert gain.grad is not None and float(gain.grad) < 0


def test_stage2_adds_the_weighted_texture_loss_only_when_asked() -> None:
    torch.manual_seed(0)
    g = HFSGenerator(channels=8, modules=1, res_blocks=2)
    d = UNetDiscriminatorSN(channels=4)
    x = _normalise(_liver_slices(25.0, seed=6, count=2, size=48))
    y = _normalise(_liver_slices(15.0, seed=7, count=2, size=48))
    opt_g, opt_d = torch.optim.Adam(g.parameters(), 1e-4), torch.optim.Adam(d.parameters(), 1e-4)
    plain = stage2_step(g, d, opt_g, opt_d, x, y, LossSpec(perceptual=0.0), None)
    assert plain["loss_g_texture"] == 0.0  # the paper's recipe by default
    m = stage2_step(g, d, opt_g, opt_d, x, y, LossSpec(perceptual=0.0, texture=2.0), None)
    assert m["loss_g_texture"] > 0
    expected = 10.0 * m["loss_g_l1"] + 1.0 * m["loss_g_gan"] + 2.0 * m["loss_g_texture"]
    assert m["loss_g_total"] == pytest.approx(expected, rel=1e-5)
