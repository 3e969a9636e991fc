"""Realism figures of a simulated site, measured on its own images (what the README table reports).

Noise is measured on noise-only images (a noisy reconstruction minus the noise-free one of the same
slices), inside the liver eroded by ``erode_mm`` so that no edge enters; the NPS is the radially
averaged power spectrum of the noise-only images in the central square of half the field of view
(the measures are those of :mod:`ctharmony.evaluate.texture`).

Example (a 256 x 256 site simulation takes about a minute; tests/simulate/test_simulate_realism.py runs it)::

    figures = measure_site(scanner, maps, np.random.default_rng(0))
    assert figures["sharp_to_standard"] >= 2
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from ctharmony.evaluate import texture
from ctharmony.simulate.forward import measure
from ctharmony.simulate.maps import MaterialMaps
from ctharmony.simulate.recon import fbp_relative, to_hu
from ctharmony.simulate.scanner import Scanner


def liver_roi(maps: MaterialMaps, erode_mm: float = 6.0) -> np.ndarray:
    """The liver without its border (and without the vessels: voxels with more iodine than the liver's median)."""
    if maps.liver is None:
        raise ValueError("liver_roi: the material maps have no liver mask")
    liver = maps.liver.astype(bool)
    iodine = maps.iodine
    vessels = liver & (iodine >= 1.3 * np.median(iodine[liver])) if liver.any() else liver
    return texture.uniform_roi(liver, maps.pixel_mm, erode_mm, exclude=vessels)


def nps_peak(noise: np.ndarray, pixel_mm: float) -> tuple[float, float]:
    """(peak, mean) frequency (lp/mm) of the NPS of noise-only slices (central half of the field)."""
    return texture.nps_peak_mean(noise, pixel_mm, crop=0.5)


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
    out.update({f"mono_{k}": v for k, v in mono_relation(noisy).items()})
    return out


def low_dose_streaks(scanner: Scanner, maps: MaterialMaps, lines: np.ndarray, rng: np.random.Generator,
                     doses: tuple[float, ...] = (1.0, 0.05)) -> dict[float, dict[str, float]]:
    """Noise and streaks of the mixed FBP image (standard kernel) at each dose factor (x the site's mAs).

    Per dose: ``noise`` (SD in the liver ROI), ``streak_index`` (:func:`ctharmony.evaluate.texture.streak_index`
    of the noise-only slices) and ``excess`` (noise / (noise at the first dose x sqrt(first / this dose)):
    1 for pure quantum noise, > 1 where photon starvation and electronic noise take over).
    """
    site, k = scanner.site, scanner.site.kernels["standard"]
    w = site.dual_energy.mix_low_weight

    def image(dose: float, noise_rng: np.random.Generator | None) -> np.ndarray:
        sino = {}
        for tube in ("low", "high"):
            exposure = scanner.exposure(tube, site.slice_thickness_mm)
            exposure = dataclasses.replace(exposure, mas=exposure.mas * dose)
            sino[tube] = np.stack([measure(lines[:, i], exposure, noise_rng) for i in range(lines.shape[1])])
        mix = w * sino["low"] + (1.0 - w) * sino["high"]
        return to_hu(fbp_relative(scanner.projector, mix, [k] * len(mix), scanner.pixel_mm))

    roi = liver_roi(maps)
    clean = image(1.0, None)
    out: dict[float, dict[str, float]] = {}
    for dose in doses:
        noise = image(dose, rng) - clean
        out[dose] = {"noise": float(noise[roi].std()),
                     "streak_index": texture.streak_index(noise, scanner.pixel_mm, patch=noise.shape[-1])}
    first = doses[0]
    for dose in doses:
        out[dose]["excess"] = out[dose]["noise"] / (out[first]["noise"] * np.sqrt(first / dose))
    return out


TISSUE_CLASSES = {"fat": (-np.inf, -50.0), "soft": (-50.0, 100.0), "enhanced": (100.0, np.inf)}  # truth HU(high)


def mono_relation(images: dict[str, np.ndarray], low: str = "M40", high: str = "M80",
                  truth: tuple[str, str] = ("T40", "T80"), hu_range: tuple[float, float] = (-200.0, 400.0),
                  min_px: int = 30) -> dict[str, float]:
    """Voxel-wise least-squares line ``HU(high) = slope HU(low) + intercept`` over the soft tissues of the slices.

    Tissues are the uniform regions of the noise-free truth (3 x 3 neighbourhood flat within 1 HU, truth
    CT number at the high energy within ``hu_range``: fat, water, muscle, liver, spleen, kidney, enhanced
    vessels; no air or bone), grouped by their (truth low, truth high) CT numbers; each group of at least
    ``min_px`` pixels is a point (its mean in ``low`` and ``high``) weighted by its pixels, as a voxel-wise
    fit (a linear recalibration) weighs it. Returns ``slope``, ``intercept``, the pixel-weighted mean
    residual ``residual_<class>`` (HU) of the classes of :data:`TISSUE_CLASSES`, ``truth_slope`` (the same
    fit on the truth) and ``tissues`` (groups).
    """
    t_low, t_high = images[truth[0]], images[truth[1]]
    flat = np.ones(t_low.shape, bool)
    for t in (t_low, t_high):
        size = (1,) * (t.ndim - 2) + (3, 3)
        flat &= (ndimage.maximum_filter(t, size) - ndimage.minimum_filter(t, size)) < 1.0
    flat &= (t_high >= hu_range[0]) & (t_high <= hu_range[1])
    keys = np.stack([np.round(t_low[flat] / 2.0), np.round(t_high[flat] / 2.0)], axis=1)
    _, group, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    group = group.ravel()
    points = []
    for g in np.nonzero(counts >= min_px)[0]:
        sel = group == g
        points.append([a[flat][sel].mean() for a in (images[low], images[high], t_low, t_high)] + [sel.sum()])
    if len(points) < 3:
        raise ValueError(f"mono_relation: only {len(points)} tissues with >= {min_px} uniform pixels")
    p = np.asarray(points, np.float64)
    w = np.sqrt(p[:, 4])  # polyfit weighs residuals: sqrt(pixels) is a voxel-wise fit
    slope, intercept = np.polyfit(p[:, 0], p[:, 1], 1, w=w)
    t_slope, t_intercept = np.polyfit(p[:, 2], p[:, 3], 1, w=w)
    residual = p[:, 1] - (slope * p[:, 0] + intercept)
    out = {"slope": float(slope), "intercept": float(intercept), "truth_slope": float(t_slope),
           "truth_intercept": float(t_intercept), "tissues": float(len(p))}
    for name, (lo, hi) in TISSUE_CLASSES.items():
        sel = (p[:, 3] >= lo) & (p[:, 3] < hi)
        out[f"residual_{name}"] = float(np.average(residual[sel], weights=p[sel, 4])) if sel.any() else float("nan")
    return out
