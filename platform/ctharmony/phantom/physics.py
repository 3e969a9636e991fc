"""Dual-energy CT image formation: the six reconstructions of one scan from one anatomy.

The scanner acquires two tube images (70 kVp "low" and Sn150 kVp "high", see :mod:`spectra`), each
with its own noise realisation. Everything else is derived from them, as on the scanner:

- FBP: the mixed image ``0.6 * low + 0.4 * high`` (120 kVp-like), FBP noise texture;
- IR: the same signal, the same noise realisation through the iterative low-pass (about 30 % lower SD,
  lower-frequency texture);
- M40 / M60 / M80: virtual mono-energetic images. Signal = the tissues' HU at that energy (xraydb);
  noise = the image-domain two-material (water / iodine) decomposition ``a(E) * n_low + b(E) * n_high``,
  whose weights grow below the tubes' energies (M40 noisiest). Siemens Mono+ frequency split: the
  low frequencies come from the E image and the high ones from the minimum-noise energy's image;
- OPT: optimum contrast, a sigmoid-weighted non-linear blend of the low and high images (the low-kV
  weight rises with the local CT number, so enhanced organs get more iodine contrast).

Example:
    >>> round(mono_weights(40.0)[0], 2) > 1.0  # extrapolation beyond the low tube: noise amplification
    True
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from ctharmony.archive.protocols import MONO_KEV as REGISTRY_MONO_KEV
from ctharmony.archive.protocols import PAPER_PROTOCOLS
from ctharmony.phantom import noise
from ctharmony.scanmodel import materials, spectra
from ctharmony.scanmodel.anatomy import Anatomy
from ctharmony.scanmodel.blends import MIX_LOW_WEIGHT, OPT_BLEND, mixed, mono_weight, opt_low_weight
from ctharmony.scanmodel.sites import ImageSite
from ctharmony.scanmodel.tissues import TISSUES

PROTOCOLS = PAPER_PROTOCOLS  # the reconstructions simulated: the registry's six (ctharmony.archive.protocols)
MONO_KEV = dict(REGISTRY_MONO_KEV)  # the energy of each mono-energetic protocol, as the registry defines it
LOW_TO_HIGH_NOISE = 1.2  # HU noise of the 70 kVp image relative to the Sn150 image (dose-balanced)
MONO_SPLIT_PERIODS = 0.12  # Mono+ split: Gaussian sigma in NPS-peak periods (M40 / M60 noise ~ 2)
PSF_SIGMA_MM = 0.45  # in-plane system blur (besides 0.45 px of pixel integration)


@functools.cache
def image_table(image: str) -> tuple[np.ndarray, float]:
    """(HU per tissue label without iodine, HU per mg/mL iodine) for "low", "high" or a keV like "60"."""
    if image in ("low", "high"):
        base = [spectra.tube_hu(image, t.material) for t in TISSUES]
        return np.asarray(base, np.float32), spectra.tube_iodine_hu_per_mg_ml(image)
    kev = float(image)
    base = [float(materials.hu_at(t.material, kev)[0]) for t in TISSUES]
    return np.asarray(base, np.float32), float(materials.iodine_hu_per_mg_ml(kev)[0])


def mono_weights(kev: float) -> tuple[float, float]:
    """Weights (a, b) with mono(E) = a * low + b * high for water + iodine (a + b = 1)."""
    a = mono_weight(kev, spectra.tube_iodine_hu_per_mg_ml("low"), spectra.tube_iodine_hu_per_mg_ml("high"))
    return a, 1.0 - a


@functools.cache
def min_noise_kev() -> float:
    """Energy of the least noisy mono image (the Mono+ high-frequency source)."""
    a_opt = 1.0 / (1.0 + LOW_TO_HIGH_NOISE**2)  # minimises (a x)^2 + (1 - a)^2
    k_low, k_high = spectra.tube_iodine_hu_per_mg_ml("low"), spectra.tube_iodine_hu_per_mg_ml("high")
    return spectra.energy_of_iodine_hu(k_high + a_opt * (k_low - k_high))


def tube_noise_sd(fbp_sd: float) -> tuple[float, float]:
    """HU noise SD of the (low, high) tube images giving ``fbp_sd`` in the mixed FBP image."""
    high = fbp_sd / np.hypot(MIX_LOW_WEIGHT * LOW_TO_HIGH_NOISE, 1.0 - MIX_LOW_WEIGHT)
    return LOW_TO_HIGH_NOISE * high, high


def psf_sigma_px(pixel_mm: float) -> float:
    return float(np.hypot(PSF_SIGMA_MM / pixel_mm, 0.45))


def clean_images(anatomy: Anatomy, images: Sequence[str]) -> dict[str, np.ndarray]:
    """Noise-free images (HU, float32) of ``images`` ("low", "high" or keV strings) with the system blur.

    Tissue CT numbers across energies span a rank-2 space (photo-electric + Compton; no K-edge in the
    soft tissues), so the images are combinations of three blurred basis maps (exact to < 0.1 HU) plus
    the blurred iodine map: four blurs instead of one per image.
    """
    tables = [image_table(i) for i in images]
    table = np.stack([t[0] for t in tables], axis=1).astype(np.float64)
    u, singular, vt = np.linalg.svd(table, full_matrices=False)
    sigma = psf_sigma_px(anatomy.grid.spacing[2])
    blur = functools.partial(ndimage.gaussian_filter, sigma=(0, sigma, sigma))
    maps = [blur((u[:, j] * singular[j]).astype(np.float32)[anatomy.labels]) for j in range(min(3, len(images)))]
    iodine = blur(anatomy.iodine)
    out = {}
    for i, (name, (_, per_mg)) in enumerate(zip(images, tables, strict=True)):
        image = np.float32(per_mg) * iodine
        for j, basis in enumerate(maps):
            image += np.float32(vt[j, i]) * basis
        out[name] = image
    return out


def render(anatomy: Anatomy, site: ImageSite, rng: np.random.Generator, noise_sd: float | None = None,
           with_clean: bool = False) -> dict[str, np.ndarray]:
    """All six reconstructions (float32 HU, z, y, x) of one scan; ``clean_<P>`` too if ``with_clean``."""
    pixel = anatomy.grid.spacing[2]
    shape = anatomy.labels.shape
    sd_low, sd_high = tube_noise_sd(site.fbp_noise_hu if noise_sd is None else noise_sd)
    n_low = np.float32(sd_low) * noise.shaped_noise(rng, shape, pixel, site.kernel_peak_lp_mm)
    n_high = np.float32(sd_high) * noise.shaped_noise(rng, shape, pixel, site.kernel_peak_lp_mm)
    e_opt = min_noise_kev()
    signal = clean_images(anatomy, ("low", "high", f"{e_opt}", *(f"{kev}" for kev in MONO_KEV.values())))
    s_low, s_high = signal["low"], signal["high"]

    s_fbp, n_fbp = mixed(s_low, s_high), mixed(n_low, n_high)
    out = {"FBP": s_fbp + n_fbp,
           "IR": s_fbp + noise.ir_noise(n_fbp, pixel, site.kernel_peak_lp_mm, site.ir_reduction)}
    clean = {"FBP": s_fbp, "IR": s_fbp}

    a_opt, b_opt = mono_weights(e_opt)
    s_opt = signal[f"{e_opt}"]
    n_opt = np.float32(a_opt) * n_low + np.float32(b_opt) * n_high
    split = MONO_SPLIT_PERIODS / noise.effective_peak(site.kernel_peak_lp_mm, pixel) / pixel
    for name, kev in MONO_KEV.items():
        a, b = mono_weights(kev)
        s_e = signal[f"{kev}"]
        detail = (s_e - s_opt) + np.float32(a - a_opt) * n_low + np.float32(b - b_opt) * n_high
        out[name] = s_opt + n_opt + ndimage.gaussian_filter(detail, (0, split, split))
        clean[name] = s_opt + ndimage.gaussian_filter(s_e - s_opt, (0, split, split))

    smooth = OPT_BLEND["smooth_px"]
    w_low = opt_low_weight(ndimage.gaussian_filter(out["FBP"], (0, smooth, smooth)))
    out["OPT"] = w_low * (s_low + n_low) + (1 - w_low) * (s_high + n_high)
    clean["OPT"] = w_low * s_low + (1 - w_low) * s_high
    if with_clean:
        out.update({f"clean_{k}": v for k, v in clean.items()})
    return out
