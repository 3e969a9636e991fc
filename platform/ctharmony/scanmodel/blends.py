"""How both scanners derive dual-energy series from the low- and high-kV images: the shared recipes.

- mixed image: ``w low + (1 - w) high`` (Siemens "mixed 0.6", a 120 kVp-like image): :func:`mixed`;
- virtual mono at E: the two-material (water / iodine) decomposition is the linear blend ``a low + (1 - a) high``
  whose weight follows from the images' iodine contrasts ``k_low``, ``k_high`` (:func:`mono_weight`); it
  grows beyond 1 below the low beam's energy, which amplifies noise (M40 is the noisiest);
- optimum contrast (OPT): a non-linear blend whose low-kV weight rises (sigmoid, :data:`OPT_BLEND`) with the
  smoothed local CT number, so enhanced organs get more iodine contrast (:func:`opt_low_weight`).

Each scanner supplies its own contrasts (its spectra, :mod:`ctharmony.scanmodel.spectra`) and smoothing.

Example:
    >>> k_low, k_high = 30.0, 10.0
    >>> round(mono_weight(40.0, k_low, k_high), 2) > 1.0  # beyond the low beam: noise amplification
    True
"""

from __future__ import annotations

import numpy as np

from ctharmony.scanmodel.materials import iodine_hu_per_mg_ml

MIX_LOW_WEIGHT = 0.6  # the mixed image's low-kV weight
OPT_BLEND = {"center_hu": 60.0, "width_hu": 30.0, "w_min": 0.30, "w_max": 0.85, "smooth_px": 1.5}


def mixed(low: np.ndarray, high: np.ndarray, low_weight: float = MIX_LOW_WEIGHT) -> np.ndarray:
    """The linearly blended image ``low_weight * low + (1 - low_weight) * high`` (float32)."""
    w = np.float32(low_weight)
    return (w * low + (1 - w) * high).astype(np.float32)


def mono_weight(kev: float, k_low: float, k_high: float) -> float:
    """``a`` in mono(E) = a low + (1 - a) high, for images adding ``k_low`` / ``k_high`` HU per mg/mL iodine."""
    return (float(iodine_hu_per_mg_ml(kev)[0]) - k_high) / (k_low - k_high)


def opt_low_weight(guide: np.ndarray) -> np.ndarray:
    """The OPT blend's low-kV weight (float32) at the smoothed CT numbers ``guide`` (HU)."""
    p = OPT_BLEND
    w = p["w_min"] + (p["w_max"] - p["w_min"]) / (1.0 + np.exp(-(guide - p["center_hu"]) / p["width_hu"]))
    return w.astype(np.float32)
