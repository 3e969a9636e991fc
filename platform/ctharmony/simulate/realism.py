"""Realism figures of a simulated site, measured on its own images (what the README table reports).

Noise is measured on noise-only images (a noisy reconstruction minus the noise-free one of the same
slices), inside the liver eroded by ``erode_mm`` so that no edge enters; the NPS is the radially
averaged power spectrum of the noise-only images in the central square of half the field of view.

Example:
    >>> figures = measure_site(scanner, maps, np.random.default_rng(0))  # doctest: +SKIP
    >>> figures["sharp_to_standard"] >= 2  # doctest: +SKIP
    True
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ctharmony.phantom.noise import radial_nps
from ctharmony.simulate.materials import MaterialMaps
from ctharmony.simulate.scan import Scanner


def liver_roi(maps: MaterialMaps, erode_mm: float = 6.0) -> np.ndarray:
    """The liver without its border (and without the vessels: voxels with more iodine than the liver's median)."""
    if maps.liver is None:
        raise ValueError("liver_roi: the material maps have no liver mask")
    liver = maps.liver.astype(bool)
    if liver.ndim == 2:
        liver = liver[None]
    iodine = maps.iodine if maps.iodine.ndim == 3 else maps.iodine[None]
    parenchyma = liver & (iodine < 1.3 * np.median(iodine[liver]))
    radius = max(1, int(round(erode_mm / maps.pixel_mm)))
    structure = np.zeros((1, 2 * radius + 1, 2 * radius + 1), bool)
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    structure[0] = yy**2 + xx**2 <= radius**2
    return ndimage.binary_erosion(parenchyma, structure)


def nps_peak(noise: np.ndarray, pixel_mm: float) -> tuple[float, float]:
    """(peak, mean) frequency (lp/mm) of the NPS of noise-only slices (central half of the field)."""
    n = noise.shape[-1]
    crop = noise[..., n // 4: n - n // 4, n // 4: n - n // 4]
    freq, power = radial_nps(crop, pixel_mm, bins=max(8, crop.shape[-1] // 4))
    smooth = np.convolve(power, np.ones(3) / 3.0, mode="same")
    return float(freq[int(np.argmax(smooth))]), float((freq * power).sum() / power.sum())


def measure_site(scanner: Scanner, maps: MaterialMaps, rng: np.random.Generator) -> dict[str, float]:
    """The realism figures of one site on ``maps`` (see the README's table)."""
    lines = scanner.project(maps)
    noisy = scanner.reconstruct(lines, maps, rng)
    clean = scanner.reconstruct(lines, maps, None)
    roi = liver_roi(maps)
    if roi.sum() < 50:
        raise ValueError(f"measure_site: only {int(roi.sum())} liver ROI pixels; use bigger or more slices")
    noise = {p: noisy[p] - clean[p] for p in noisy if not p.startswith("T")}
    sd = {p: float(noise[p][roi].std()) for p in noise}
    ir = scanner.site.ir
    out: dict[str, float] = {f"noise_{p}": sd[p] for p in sd}
    out["sharp_to_standard"] = sd["FBP_sharp"] / sd["FBP"]
    for level in ir.strengths:
        out[f"ir_reduction_{level}"] = 1.0 - sd[f"IR_{level}"] / sd["FBP"]
        out[f"nps_peak_IR_{level}"], out[f"nps_mean_IR_{level}"] = nps_peak(noise[f"IR_{level}"], scanner.pixel_mm)
    out["nps_peak_FBP"], out["nps_mean_FBP"] = nps_peak(noise["FBP"], scanner.pixel_mm)
    for kev in (40, 60, 80):
        out[f"liver_hu_M{kev}"] = float(noisy[f"M{kev}"][roi].mean())
        out[f"liver_hu_T{kev}"] = float(noisy[f"T{kev}"][roi].mean())
    out["m40_to_m80_noise"] = sd["M40"] / sd["M80"]
    out["m40_to_m80_noise_plain"] = sd["M40_plain"] / sd["M80_plain"]
    out["liver_rois_px"] = float(roi.sum())
    return out
