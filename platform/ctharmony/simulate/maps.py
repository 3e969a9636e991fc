"""Material maps, the simulator's input: water and bone fractions plus iodine, from the anatomy model or real CT.

:class:`MaterialMaps` holds the three basis maps (:data:`ctharmony.scanmodel.materials.BASIS`): a slice is
projected once, and every spectrum combines the three line integrals.

Phantom: the patient's tissue labels (:func:`ctharmony.scanmodel.anatomy.build_anatomy`) become water and
bone fractions (:func:`~ctharmony.scanmodel.materials.label_basis`) plus its iodine map. A slice of
thickness T is the mean of ``sub`` thin slices across it (projection is linear, so this is the thick
slice's line integral; the non-linear partial-volume effect is left out); the true liver mask is the
central thin slice's (the phantom's own mask of that slice).

Real CT: the trunk (:func:`trunk`: the largest connected body region; table and arms dropped, as they would
not fit the reconstruction circle) becomes maps by a recipe over the CT number at the image's effective
energy (70 keV for 120 kVp):
air-fat mix below fat, fat-soft tissue mix up to soft tissue (+50 HU), soft tissue + iodine above it
(iodine = the excess over soft tissue), soft tissue-cortical bone mix above :data:`BONE_HU`. The source
kernel's blur is undone to first order (unsharp mask with its PSF, the "resolution boost") before
resampling, so re-simulation does not blur twice. :class:`Augment` varies the iodine (level and
liver-to-vessel phase), the body scale, the dose (the site's mAs times ``dose_scale``, applied by the
scanner: :func:`ctharmony.simulate.studies.patient_scanner`) and the shape (:func:`elastic`: a smooth random
warp of the maps and the liver mask together), so one real patient yields many.

Example:
    >>> hu = np.array([[-1000.0, -100.0, 40.0, 160.0, 900.0]])
    >>> m = maps_from_hu(hu, pixel_mm=1.0)
    >>> [round(float(v), 2) for v in m.iodine[0]]
    [0.0, 0.0, 0.0, 4.1, 0.0]
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np
from scipy import ndimage

from ctharmony.scanmodel import materials as icru
from ctharmony.scanmodel.anatomy import build_anatomy
from ctharmony.scanmodel.grid import Grid
from ctharmony.scanmodel.materials import basis_attenuation, label_basis, tissue_basis

EFFECTIVE_KEV = 70.0  # a 120 kVp image's CT numbers ~ those of 70 keV
BONE_HU = 250.0  # above: soft tissue + bone; below: soft tissue + iodine
SOURCE_PSF_MM = 0.6  # blur of a standard source kernel (e.g. Br38f), undone by the resolution boost


@dataclasses.dataclass
class MaterialMaps:
    """Water and bone fractions and iodine (mg/mL) of one or more slices, (z, y, x) or (y, x), on a square grid.

    ``liver`` is the true liver mask (optional), ``pixel_mm`` the in-plane spacing.
    """

    water: np.ndarray
    bone: np.ndarray
    iodine: np.ndarray
    pixel_mm: float
    liver: np.ndarray | None = None

    def stack(self) -> np.ndarray:
        """(3, ...) float32: the maps in :data:`BASIS` order."""
        return np.stack([self.water, self.bone, self.iodine]).astype(np.float32)

    def mono_hu(self, kev: float) -> np.ndarray:
        """Noise-free, unblurred CT numbers at a monochromatic energy (the truth images T40 / T60 / T80)."""
        mu = basis_attenuation(np.asarray([kev]))[:, 0]
        total = mu[0] * self.water + mu[1] * self.bone + mu[2] * self.iodine
        return (1000.0 * (total - mu[0]) / mu[0]).astype(np.float32)


def phantom_maps(params: dict[str, Any], grid: Grid, sub: int = 3) -> MaterialMaps:
    """Material maps of a phantom patient on ``grid`` (regular, axial), each slice the mean of ``sub`` thin ones."""
    nz, ny, nx = grid.shape
    dz = grid.spacing[0]
    thin = Grid(shape=(nz * sub, ny, nx), spacing=(dz / sub, *grid.spacing[1:]),
                origin=(grid.origin[0], grid.origin[1], grid.origin[2] - dz / 2.0 + dz / (2.0 * sub)))
    anatomy = build_anatomy(params, thin)
    basis = label_basis()[anatomy.labels]  # (z, y, x, 2)

    def mean(a: np.ndarray) -> np.ndarray:
        return a.reshape(nz, sub, ny, nx).mean(axis=1).astype(np.float32)

    liver = anatomy.liver_mask.reshape(nz, sub, ny, nx)[:, sub // 2]
    return MaterialMaps(water=mean(basis[..., 0]), bone=mean(basis[..., 1]), iodine=mean(anatomy.iodine),
                        pixel_mm=float(grid.spacing[2]), liver=liver.astype(np.uint8))


@functools.cache
def _reference_hu() -> dict[str, float]:
    e = EFFECTIVE_KEV
    return {"fat": float(icru.hu_at("adipose", e)[0]), "soft": float(icru.hu_at("liver", e)[0]),
            "bone": float(icru.hu_at("cortical_bone", e)[0]), "iodine": float(icru.iodine_hu_per_mg_ml(e)[0])}


def maps_from_hu(hu: np.ndarray, pixel_mm: float, liver: np.ndarray | None = None) -> MaterialMaps:
    """Water / bone / iodine maps from CT numbers of a ~120 kVp image (the recipe of the module docstring)."""
    ref = _reference_hu()
    hu = np.asarray(hu, np.float32)
    fat, soft = np.asarray(tissue_basis("adipose")), np.asarray(tissue_basis("liver"))
    bone = np.asarray(tissue_basis("cortical_bone"))
    water_frac = np.zeros(hu.shape + (2,), np.float32)
    iodine = np.zeros(hu.shape, np.float32)
    f_air = np.clip((hu + 1000.0) / (ref["fat"] + 1000.0), 0.0, 1.0)
    f_fat = np.clip((hu - ref["fat"]) / (ref["soft"] - ref["fat"]), 0.0, 1.0)
    f_bone = np.clip((hu - ref["soft"]) / (ref["bone"] - ref["soft"]), 0.0, 1.0)
    below_fat, soft_band, bony = hu < ref["fat"], (hu >= ref["fat"]) & (hu < BONE_HU), hu >= BONE_HU
    water_frac[below_fat] = f_air[below_fat, None] * fat
    water_frac[soft_band] = (1 - f_fat[soft_band, None]) * fat + f_fat[soft_band, None] * soft
    water_frac[bony] = (1 - f_bone[bony, None]) * soft + f_bone[bony, None] * bone
    enhanced = soft_band & (hu > ref["soft"])
    iodine[enhanced] = (hu[enhanced] - ref["soft"]) / ref["iodine"]
    return MaterialMaps(water=water_frac[..., 0], bone=water_frac[..., 1], iodine=iodine, pixel_mm=float(pixel_mm),
                        liver=None if liver is None else np.asarray(liver, np.uint8))


def displacement_field(shape: tuple[int, int], amplitude_px: float, scale_px: float,
                       rng: np.random.Generator) -> np.ndarray:
    """A smooth random in-plane displacement (2, y, x) in pixels: smoothed white noise of RMS ``amplitude_px``."""
    field = np.stack([ndimage.gaussian_filter(rng.standard_normal(shape), scale_px, mode="reflect")
                      for _ in range(2)])
    rms = float(np.sqrt((field**2).sum(axis=0).mean()))
    return (field * (amplitude_px / rms if rms > 0 else 0.0)).astype(np.float32)


def elastic(maps: MaterialMaps, amplitude_mm: float, scale_mm: float = 40.0, seed: int = 0) -> MaterialMaps:
    """The maps and the liver mask warped by one smooth random displacement (the same for every slice).

    Material maps are interpolated linearly (outside the field: air), the mask as a fraction then
    thresholded at one half, so mask and anatomy move together. Seeded: same ``seed``, same warp.
    """
    if amplitude_mm <= 0:
        return maps
    water = maps.water if maps.water.ndim == 3 else maps.water[None]
    shape = water.shape[-2:]
    disp = displacement_field(shape, amplitude_mm / maps.pixel_mm, scale_mm / maps.pixel_mm,
                              np.random.default_rng(seed))
    yy, xx = np.mgrid[:shape[0], :shape[1]].astype(np.float32)
    coords = np.stack([yy + disp[0], xx + disp[1]])

    def warp(a: np.ndarray | None) -> np.ndarray | None:
        if a is None:
            return None
        stack = a if a.ndim == 3 else a[None]
        out = np.stack([ndimage.map_coordinates(s.astype(np.float32), coords, order=1, cval=0.0) for s in stack])
        return out if a.ndim == 3 else out[0]

    liver = None if maps.liver is None else (warp(maps.liver.astype(np.float32)) > 0.5).astype(np.uint8)
    return MaterialMaps(water=warp(maps.water), bone=warp(maps.bone), iodine=warp(maps.iodine),
                        pixel_mm=maps.pixel_mm, liver=liver)


@dataclasses.dataclass(frozen=True)
class Augment:
    """Variations of one anatomy: iodine level, liver-to-vessel phase, body scale, dose (mAs factor), elastic warp."""

    iodine_scale: float = 1.0
    liver_iodine_scale: float = 1.0  # < 1: earlier (arterial-like) liver enhancement relative to the vessels
    body_scale: float = 1.0
    dose_scale: float = 1.0
    elastic_mm: float = 0.0  # RMS displacement of the smooth warp (0: none)
    elastic_scale_mm: float = 40.0  # its correlation length
    seed: int = 0  # of the warp

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Augment:
        return cls(iodine_scale=float(rng.uniform(0.8, 1.2)), liver_iodine_scale=float(rng.uniform(0.8, 1.1)),
                   body_scale=float(rng.uniform(0.9, 1.1)), dose_scale=float(rng.choice([0.5, 1.0, 1.0, 1.5])),
                   elastic_mm=float(rng.uniform(0.0, 5.0)), seed=int(rng.integers(2**31)))


def trunk(hu: np.ndarray, pixel_mm: float = 1.0, bridge_mm: float = 10.0) -> np.ndarray:
    """The trunk of real CT slices (z, y, x HU): the largest 3-D connected region above -500 HU, holes filled.

    Regions are told apart after an in-plane erosion by ``bridge_mm`` (an arm touching the side, the
    table under the back), then grown back inside the body, so the table and the arms are left out.

    Example:
        >>> hu = np.full((1, 40, 40), -1000.0); hu[0, 5:35, 5:30] = 40.0; hu[0, 15, 15] = -900.0
        >>> hu[0, 10:20, 31:38] = 60.0; hu[0, 14:16, 30] = 60.0  # an arm touching the trunk
        >>> body = trunk(hu, pixel_mm=1.0, bridge_mm=3.0)
        >>> bool(body[0, 5:35, 5:30].all()), int(body[0, :, 33:].sum())  # the trunk whole, the arm dropped
        (True, 0)
    """
    body = np.asarray(hu) > -500
    if not body.any():
        raise ValueError("real CT: no body (CT numbers above -500 HU) in the slices")
    plane = np.zeros((3, 3, 3), bool)
    plane[1] = True  # in-plane 8-neighbourhood
    steps = max(1, int(round(bridge_mm / pixel_mm)))
    core = ndimage.binary_erosion(body, plane, iterations=steps)
    if not core.any():
        core, steps = body, 0
    labels, count = ndimage.label(core)
    largest = labels == 1 + int(np.argmax(ndimage.sum_labels(core, labels, np.arange(1, count + 1))))
    grown = ndimage.binary_dilation(largest, plane, iterations=steps + 2, mask=body) if steps else largest
    return np.stack([ndimage.binary_fill_holes(s) for s in grown])


def body_frame(body: np.ndarray, pixel_mm: float) -> tuple[tuple[float, float], float]:
    """(Centre (row, column) px of the body's bounding box over all slices, farthest body pixel from it in mm)."""
    ys, xs = np.nonzero(np.asarray(body).any(axis=0))
    if not len(ys):
        raise ValueError("real CT: empty body mask")
    centre = ((ys.min() + ys.max()) / 2.0, (xs.min() + xs.max()) / 2.0)
    radius = float(np.sqrt((ys - centre[0]) ** 2 + (xs - centre[1]) ** 2).max() + 0.5) * pixel_mm
    return (float(centre[0]), float(centre[1])), radius


def real_maps(hu: np.ndarray, pixel_mm: float, size: int, fov_mm: float, liver: np.ndarray | None = None,
              augment: Augment = Augment()) -> MaterialMaps:
    """Maps of real CT slices (z, y, x HU at ``pixel_mm``) on a ``size`` x ``size`` grid of ``fov_mm``.

    Only the :func:`trunk` is kept (air elsewhere); the source blur is undone (resolution boost), the trunk
    is centred (:func:`body_frame`) and scaled by ``augment.body_scale``, the iodine scaled, and the maps
    and mask warped by ``augment.elastic_mm``. ``augment.dose_scale`` acts on the scanner, not the maps.
    """
    hu = np.asarray(hu, np.float32)
    body = trunk(hu, pixel_mm)
    hu = np.where(body, hu, np.float32(-1000.0))
    sigma = SOURCE_PSF_MM / pixel_mm
    boosted = hu + (hu - ndimage.gaussian_filter(hu, (0, sigma, sigma)))
    centre = np.array(body_frame(body, pixel_mm)[0])
    out_px = fov_mm / size
    step = out_px / pixel_mm / augment.body_scale  # source pixels per output pixel
    grid = (np.arange(size) - (size - 1) / 2.0) * step
    coords = np.stack(np.meshgrid(centre[0] + grid, centre[1] + grid, indexing="ij"))

    def sample(a: np.ndarray, order: int, cval: float) -> np.ndarray:
        if step > 1.5 and order > 0:  # area-average before point sampling (anti-aliasing)
            a = ndimage.uniform_filter(a, (1, int(round(step)), int(round(step))), mode="nearest")
        return np.stack([ndimage.map_coordinates(s, coords, order=order, cval=cval) for s in a])

    resampled = sample(boosted, 1, -1000.0)
    mask = None if liver is None else sample(np.asarray(liver, np.float32), 0, 0.0) > 0.5
    maps = maps_from_hu(resampled, out_px, mask)
    maps.iodine *= np.float32(augment.iodine_scale)
    if mask is not None:
        maps.iodine[mask] *= np.float32(augment.liver_iodine_scale)
    return elastic(maps, augment.elastic_mm, augment.elastic_scale_mm, augment.seed)

