"""Dual-energy images: mixed, two-material (water / iodine) decomposition, virtual mono, Mono+, optimum contrast.

The low- and high-kV images (water-corrected FBP, HU) see iodine with ``k_low`` and ``k_high`` HU per
mg/mL, the spectrum-weighted iodine-to-water attenuation behind ``water_cm`` of water (a body's
central path). Per pixel, ``HU = water_hu + k * c`` for both images gives the water-equivalent CT number
and the iodine concentration ``c``; a virtual mono image at E is ``water_hu + k(E) c``, i.e. a linear
blend ``a low + (1 - a) high`` whose weights, and so its noise, grow below the beams' energies.
Noise-optimised mono (as Siemens Mono+) keeps the low frequencies of the E image and takes the high
ones from the least-noisy energy; optimum contrast blends low and high with a weight rising with the
local CT number (the recipes both scanners share: :mod:`ctharmony.scanmodel.blends`).

Example:
    >>> from ctharmony.scanmodel.spectra import Beam
    >>> k = iodine_hu_per_mg_ml(Beam(80.0)), iodine_hu_per_mg_ml(Beam(150.0, (("Al", 6.0), ("Sn", 0.6))))
    >>> k[0] > 2 * k[1]
    True
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage

from ctharmony.scanmodel.blends import OPT_BLEND, mixed, mono_weight, opt_low_weight
from ctharmony.scanmodel.materials import basis_attenuation
from ctharmony.scanmodel.spectra import Beam, weighted_iodine_hu


@functools.cache
def iodine_hu_per_mg_ml(beam: Beam, water_cm: float = 20.0) -> float:
    """HU per mg/mL iodine in the water-corrected image of ``beam`` behind ``water_cm`` of water."""
    energies, n = beam.spectrum()
    water = basis_attenuation(energies)[0]
    return weighted_iodine_hu(energies, n * energies * np.exp(-water * water_cm))


def mono(low: np.ndarray, high: np.ndarray, kev: float, k_low: float, k_high: float) -> np.ndarray:
    """Virtual mono-energetic image (HU) at ``kev`` from the decomposition."""
    a = np.float32(mono_weight(kev, k_low, k_high))
    return (a * low + (1 - a) * high).astype(np.float32)


def mono_plus(low: np.ndarray, high: np.ndarray, kev: float, k_low: float, k_high: float, opt_kev: float,
              split_px: float) -> np.ndarray:
    """Noise-optimised mono: low frequencies of the ``kev`` image, high frequencies of the ``opt_kev`` one."""
    e = mono(low, high, kev, k_low, k_high)
    o = mono(low, high, opt_kev, k_low, k_high)
    sigma = (0,) * (e.ndim - 2) + (split_px, split_px)
    return (o + ndimage.gaussian_filter(e - o, sigma)).astype(np.float32)


def optimum_contrast(low: np.ndarray, high: np.ndarray, pixel_mm: float) -> np.ndarray:
    """Non-linear blend: the low-kV weight rises (sigmoid) with the smoothed local CT number."""
    smooth = OPT_BLEND["smooth_px"] * 0.9 / pixel_mm  # the phantom's smoothing was set for ~0.9 mm pixels
    w = opt_low_weight(ndimage.gaussian_filter(mixed(low, high, 0.6), (0,) * (low.ndim - 2) + (smooth, smooth)))
    return (w * low + (1 - w) * high).astype(np.float32)
