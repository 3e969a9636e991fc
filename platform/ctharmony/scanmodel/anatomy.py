"""Smooth random per-patient abdominal anatomy as a 3-D label volume plus an iodine map.

A patient is a small set of parameters (age group, body size, liver size / position / enhancement,
a smooth warp) drawn from a seeded generator. :func:`build_anatomy` turns them into tissue labels on a
grid in patient coordinates (LPS mm: +x patient left, +y posterior, +z superior). Organs are painted
in a fixed priority order into one label volume, so they never overlap; every shape is evaluated in
coordinates displaced by the same smooth warp, so boundaries are smooth and contiguous in z. Shapes are
functions of position, so any :class:`~ctharmony.scanmodel.grid.Grid` works: tilted or irregular slices
sample the same body at their own planes. :func:`patient_grid` is a patient's scan grid at a site (both
scanners scan on it).

Example:
    >>> import numpy as np
    >>> params = sample_patient(np.random.default_rng(0))
    >>> anat = build_anatomy(params, Grid(shape=(4, 64, 64), spacing=(3.0, 6.0, 6.0), origin=(-189, -189, -4.5)))
    >>> anat.labels.shape, bool((anat.labels == LABEL["liver"]).any())
    ((4, 64, 64), True)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from scipy import ndimage

from ctharmony.scanmodel.grid import Grid
from ctharmony.scanmodel.sites import Site
from ctharmony.scanmodel.tissues import LABEL, LIVER_LABELS, TISSUES
from ctharmony.scanmodel.vessels import paint_liver_vessels

AGE_GROUPS = {  # name: (probability, age range in years, body scale range, liver volume range in mL)
    "child": (0.45, (0.5, 10.0), (0.58, 0.75), (320.0, 900.0)),
    "adolescent": (0.30, (10.0, 18.0), (0.75, 0.92), (800.0, 1450.0)),
    "adult": (0.25, (18.0, 50.0), (0.90, 1.08), (1150.0, 1900.0)),
}
LIVER_FILL = 0.85  # the painted liver (union of lobes, clipped by the body wall) over the lobes' volume sum


@dataclasses.dataclass
class Anatomy:
    """Tissue labels (uint8) and iodine concentration (mg/mL, float32), both (z, y, x)."""

    labels: np.ndarray
    iodine: np.ndarray
    grid: Grid

    @property
    def liver_mask(self) -> np.ndarray:
        return np.isin(self.labels, LIVER_LABELS).astype(np.uint8)


def sample_patient(rng: np.random.Generator) -> dict[str, Any]:
    """Draw one patient's anatomical and enhancement parameters (JSON-serialisable)."""
    names = list(AGE_GROUPS)
    group = names[int(rng.choice(len(names), p=[AGE_GROUPS[n][0] for n in names]))]
    _, ages, scales, liver_ml = AGE_GROUPS[group]
    s = float(rng.uniform(*scales))
    contrast = float(rng.uniform(0.85, 1.15))  # patient-level iodine delivery (weight, timing)
    params = {
        "age_group": group,
        "age_years": round(float(rng.uniform(*ages)), 1),
        "body_scale": s,
        "body_semi_axes_mm": [160.0 * s * float(rng.uniform(0.93, 1.07)), 112.0 * s * float(rng.uniform(0.93, 1.07))],
        "body_offset_mm": [float(rng.normal(0, 4)), float(rng.normal(0, 4))],
        "fat_mm": float(rng.uniform(5, 25)) * s,
        "muscle_mm": float(rng.uniform(7, 11)) * s,
        # liver: centre relative to the body interior, target volume, height and left-lobe extent
        "liver_center_rel": [float(rng.uniform(-0.50, -0.38)), float(rng.uniform(-0.12, 0.02))],
        "liver_target_ml": float(rng.uniform(*liver_ml)),
        "liver_halfheight_mm": float(rng.uniform(70, 90)) * s ** 0.8,
        "left_lobe": float(rng.uniform(0.7, 1.2)),
        "contrast": contrast,
        "liver_iodine_mg_ml": float(rng.uniform(0.85, 1.15)) * 1.5 * contrast ** 0.5,
        "vessel_iodine_scale": contrast,
        "liver_texture": float(rng.uniform(0.015, 0.035)),
        "warp_mm": float(rng.uniform(3, 8)) * s,
        "warp_seed": int(rng.integers(0, 2**31 - 1)),
        "kidney_z_rel": float(rng.uniform(-0.9, -0.6)),
        "stomach_fill": float(rng.uniform(0.3, 0.7)),
        "bowel_seed": int(rng.integers(0, 2**31 - 1)),
    }
    params["liver_size"] = _liver_size_for(params)
    return params


def patient_grid(params: dict[str, Any], site: Site, slices: int, size: int, z_shift_mm: float) -> Grid:
    """The scan grid, centred on the liver, with the site's slice thickness and field of view.

    The FOV is the site's, tightened for small patients (at most 60 mm wider than the body, as
    paediatric protocols do) and widened when the body would not fit.
    """
    ax, ay = params["body_semi_axes_mm"]
    ox, oy = params["body_offset_mm"]
    needed = 2.0 * (max(ax, ay) * 1.06 + max(abs(ox), abs(oy))) + 20.0
    fov = 10.0 * math.ceil(max(needed, min(site.fov_mm, needed + 60.0)) / 10.0)
    pixel = round(fov / size, 4)  # values DICOM's decimal strings hold exactly, so masks match the images
    dz = site.slice_thickness_mm
    start = round(-(size - 1) / 2.0 * pixel, 4)
    return Grid(shape=(slices, size, size), spacing=(dz, pixel, pixel),
                origin=(start, start, round(z_shift_mm - (slices - 1) / 2.0 * dz, 3)))


def _liver_size_for(params: dict[str, Any]) -> float:
    """Scale of the two liver lobes (ellipsoids) that gives about the target volume."""
    ax, ay = params["body_semi_axes_mm"]
    ix = ax - params["fat_mm"] - params["muscle_mm"]
    iy = ay - params["fat_mm"] - params["muscle_mm"]
    hh = params["liver_halfheight_mm"]
    unit = 4.0 / 3.0 * np.pi * (0.52 * ix * 0.66 * iy * hh + 0.45 * ix * params["left_lobe"] * 0.26 * iy * 0.55 * hh)
    return float(np.clip((params["liver_target_ml"] * 1000.0 / (LIVER_FILL * unit)) ** (1 / 3), 0.75, 1.35))


def _smooth_field(rng: np.random.Generator, z: np.ndarray, y: np.ndarray, x: np.ndarray, terms: int = 3,
                  wavelength_mm: tuple[float, float] = (90.0, 220.0)) -> np.ndarray:
    """Sum of products of sinusoids, roughly in [-1, 1]: a smooth random field at broadcastable (z, y, x)."""
    field = np.zeros(np.broadcast_shapes(z.shape, y.shape, x.shape), np.float32)
    for _ in range(terms):
        fz, fy, fx = (2 * np.pi / rng.uniform(*wavelength_mm, size=3)).tolist()
        pz, py, px = rng.uniform(0, 2 * np.pi, size=3).tolist()
        fz_ = np.cos(fz * z + pz).astype(np.float32)
        fy_ = np.cos(fy * y + py).astype(np.float32)
        fx_ = np.cos(fx * x + px).astype(np.float32)
        field += fz_ * (fy_ * fx_)
    return field / np.float32(terms) ** 0.5


class _Canvas:
    """The label volume and warped coordinates; shapes are evaluated only inside their bounding box."""

    def __init__(self, labels: np.ndarray, bounds: tuple[tuple[np.ndarray, np.ndarray], ...],
                 warped: tuple[np.ndarray, ...], margin: float) -> None:
        self.labels, self.bounds, self.margin = labels, bounds, margin  # (low, high) per index, ascending
        self.z, self.y, self.x = warped

    def box(self, center, semi_axes) -> tuple[slice, slice, slice]:
        """Index box (z, y, x) holding the shape, widened by the warp amplitude; inf axes span all."""
        out = []
        centers, semis = (center[2], center[1], center[0]), (semi_axes[2], semi_axes[1], semi_axes[0])
        for (low, high), c, a in zip(self.bounds, centers, semis, strict=True):
            a = float(np.max(a))
            if not np.isfinite(a):
                out.append(slice(None))
                continue
            lo = int(np.searchsorted(high, c - a - self.margin))
            hi = int(np.searchsorted(low, c + a + self.margin))
            out.append(slice(lo, max(lo, hi)))
        return tuple(out)

    def radius(self, center, semi_axes, power: float = 2.0, box=None):
        """(box, normalised radius < 1 inside) of an axis-aligned super-ellipsoid (2-D if z axis is inf)."""
        box = self.box(center, semi_axes) if box is None else box
        x, y = self.x[box], self.y[box]
        ax, ay = semi_axes[0], semi_axes[1]
        if not np.isscalar(ax):  # position-dependent semi-axes, e.g. (z, 1, 1)
            ax, ay = ax[_within(ax.shape, box)], ay[_within(ay.shape, box)]
        r = np.abs((x - center[0]) / ax) ** power + np.abs((y - center[1]) / ay) ** power
        if np.isfinite(semi_axes[2]):
            r = r + np.abs((self.z[box] - center[2]) / semi_axes[2]) ** power
        return box, r

    def mask(self, center, semi_axes, power: float = 2.0) -> np.ndarray:
        """Full-volume boolean mask of the shape's inside."""
        out = np.zeros(self.labels.shape, bool)
        box, r = self.radius(center, semi_axes, power)
        out[box] = r < 1
        return out

    def paint(self, label: str, center, semi_axes, power: float = 2.0, below: float = 1.0, where=None) -> None:
        """Set ``label`` where the radius < ``below`` (and ``where``, a full-volume mask, holds)."""
        box, r = self.radius(center, semi_axes, power)
        inside = r < below
        if where is not None:
            inside &= where[box]
        self.labels[box][inside] = LABEL[label]


def _within(shape: tuple[int, ...], box: tuple[slice, ...]) -> tuple[slice, ...]:
    """``box`` restricted to the axes along which an array of ``shape`` varies (size-1 axes broadcast)."""
    return tuple(b if n > 1 else slice(None) for b, n in zip(box, shape, strict=True))


def _index_bounds(coordinate: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest value of ``coordinate`` (broadcastable) at each index along ``axis``, 1-D each."""
    others = tuple(a for a in range(coordinate.ndim) if a != axis)
    low, high = coordinate.min(axis=others), coordinate.max(axis=others)
    if np.any(np.diff(low) < 0) or np.any(np.diff(high) < 0):
        raise ValueError(f"grid coordinate along axis {axis} must increase with the index")
    return low, high


def build_anatomy(params: dict[str, Any], grid: Grid) -> Anatomy:
    """Paint the patient's tissues on ``grid``; later tissues override earlier ones (no overlaps)."""
    z1, y1, x1 = (a.astype(np.float32) for a in grid.coordinates())
    warp_rng = np.random.default_rng(params["warp_seed"])
    amp = np.float32(params["warp_mm"])
    x = x1 + amp * _smooth_field(warp_rng, z1, y1, x1)
    y = y1 + amp * _smooth_field(warp_rng, z1, y1, x1)
    z = z1 + amp * _smooth_field(warp_rng, z1, y1, x1)
    labels = np.zeros(grid.shape, np.uint8)
    bounds = tuple(_index_bounds(c, axis) for axis, c in enumerate((z1, y1, x1)))
    canvas = _Canvas(labels, bounds, (z, y, x), margin=1.8 * float(amp) + 2.0 * max(grid.spacing))

    s = params["body_scale"]
    ax, ay = params["body_semi_axes_mm"]
    bx, by = params["body_offset_mm"]
    taper = 1.0 + 0.04 * np.tanh(-z1 / 120.0)  # slightly wider below the liver
    fat, muscle = params["fat_mm"], params["muscle_mm"]
    ix, iy = ax - fat - muscle, ay - fat - muscle  # interior semi-axes
    for label, (sx, sy_) in (("fat", (ax, ay)), ("muscle", (ax - fat, ay - fat)), ("fat", (ix, iy))):
        canvas.paint(label, (bx, by, 0), (sx * taper, sy_ * taper, np.inf), power=2.4)
    interior = canvas.mask((bx, by, 0), (ix * taper, iy * taper, np.inf), power=2.4)

    # spine: vertebral body (cortical shell, marrow), canal, spinous process, paraspinal muscles, ribs
    sy = by + iy * 0.62
    vr = 17.0 * s
    for side in (-1, 1):
        canvas.paint("muscle", (bx + side * 2.0 * vr, sy + 1.9 * vr, 0), (1.5 * vr, 1.2 * vr, np.inf))
        canvas.paint("muscle", (bx + side * 1.9 * vr, sy - 0.1 * vr, -60.0 * s), (0.8 * vr, 0.8 * vr, 55 * s))
    canvas.paint("cortical_bone", (bx, sy, 0), (vr * 1.1, vr, np.inf))
    canvas.paint("marrow", (bx, sy, 0), (vr * 1.1, vr, np.inf), below=0.72)
    canvas.paint("cortical_bone", (bx, sy + 1.9 * vr, 0), (0.3 * vr, 0.9 * vr, np.inf))
    canvas.paint("csf", (bx, sy + 1.3 * vr, 0), (0.45 * vr, 0.4 * vr, np.inf))
    _paint_ribs(canvas, (bx, by), (ix, iy), s)

    # abdominal organs (order = priority: later wins); the liver is centred on z = 0
    _paint_bowel(canvas, np.random.default_rng(params["bowel_seed"]), (bx, by), (ix, iy), s, interior)
    st_c = (bx + 0.38 * ix, by - 0.30 * iy, 25 * s)
    st_ax = (0.32 * ix, 0.34 * iy, 60 * s)
    canvas.paint("gi_wall", st_c, st_ax)
    box, r = canvas.radius(st_c, (st_ax[0] - 4 * s, st_ax[1] - 4 * s, st_ax[2] - 4 * s), box=canvas.box(st_c, st_ax))
    gas_level = st_c[1] - st_ax[1] + 2 * st_ax[1] * (1 - params["stomach_fill"])
    fluid = np.where(y[box] >= gas_level, LABEL["gi_fluid"], LABEL["gas"]).astype(np.uint8)
    labels[box][r < 1] = fluid[r < 1]

    lc = params["liver_center_rel"]
    size, hh = params["liver_size"], params["liver_halfheight_mm"]
    right_c = (bx + lc[0] * ix, by + lc[1] * iy, 0.0)
    right_ax = (0.52 * ix * size, 0.66 * iy * size, hh * size)
    left_c = (bx + 0.02 * ix, by - 0.42 * iy, 0.3 * hh)
    left_ax = (0.45 * ix * size * params["left_lobe"], 0.26 * iy * size, 0.55 * hh * size)
    inner = canvas.mask((bx, by, 0), ((ix - 3) * taper, (iy - 3) * taper, np.inf), power=2.4)
    for c, a in ((right_c, right_ax), (left_c, left_ax)):
        canvas.paint("liver", c, a, where=inner)
    paint_liver_vessels(labels, x, y, z, right_c, right_ax, left_c, s)

    canvas.paint("spleen", (bx + 0.62 * ix, by + 0.28 * iy, 10 * s), (0.22 * ix, 0.36 * iy, 55 * s), where=interior)
    for side in (-1, 1):
        kz = params["kidney_z_rel"] * hh
        canvas.paint("kidney", (bx + side * 0.42 * ix, by + 0.45 * iy, kz), (26 * s, 30 * s, 50 * s))
    canvas.paint("ivc", (bx - 0.16 * ix, sy - 1.35 * vr, 0), (9 * s, 11 * s, np.inf))
    canvas.paint("aorta", (bx + 0.05 * ix, sy - 1.45 * vr, 0), (10 * s, 10 * s, np.inf))
    _drop_liver_slivers(labels)
    return Anatomy(labels=labels, iodine=_iodine_map(labels, params, z1, y1, x1), grid=grid)


def _drop_liver_slivers(labels: np.ndarray, fraction: float = 0.02) -> None:
    """Turn liver fragments cut off by later organs (smaller than ``fraction`` of the largest) into fat."""
    liver = np.isin(labels, LIVER_LABELS)
    pieces, count = ndimage.label(liver)
    if count < 2:
        return
    sizes = np.bincount(pieces.ravel())[1:]
    small = np.flatnonzero(sizes < fraction * sizes.max()) + 1
    labels[np.isin(pieces, small)] = LABEL["fat"]


def _paint_ribs(canvas: _Canvas, center, interior, s) -> None:
    """Oblique ribs: small bony ellipses on the body wall, present where each rib's band crosses z."""
    angles = np.deg2rad(np.r_[np.linspace(-160, -25, 6), np.linspace(25, 160, 6)])
    period = 38.0 * s
    for k, theta in enumerate(angles):
        c = (center[0] + 0.97 * interior[0] * np.cos(theta), center[1] + 0.97 * interior[1] * np.sin(theta), 0)
        box, r = canvas.radius(c, (6.5 * s, 6.5 * s, np.inf))
        z = canvas.z[box]
        band = (np.cos(2 * np.pi * (z - 11.0 * k * s - 20.0 * abs(theta)) / period) > 0.55) & (z > -40 * s)
        canvas.labels[box][(r < 1) & band] = LABEL["cortical_bone"]
        canvas.labels[box][(r < 0.4) & band] = LABEL["marrow"]


def _paint_bowel(canvas: _Canvas, rng, center, interior, s, inside) -> None:
    """Bowel loops in the lower anterior abdomen: walls with fluid and gas content."""
    for _ in range(7):
        c = (center[0] + rng.uniform(-0.5, 0.6) * interior[0], center[1] + rng.uniform(-0.6, 0.1) * interior[1],
             rng.uniform(-120, -20) * s)
        r = rng.uniform(10, 18) * s
        semi = (r, r * rng.uniform(0.7, 1.3), r * 2.0)
        content = "gas" if rng.uniform() < 0.35 else "gi_fluid"
        canvas.paint("gi_wall", c, semi, where=inside)
        canvas.paint(content, c, semi, below=0.55, where=inside)


def _iodine_map(labels: np.ndarray, params: dict[str, Any], z, y, x) -> np.ndarray:
    """Iodine (mg/mL) per voxel: the tissue's uptake scaled per patient, plus smooth liver texture.

    ``z, y, x`` are the voxels' broadcastable (unwarped) coordinates.
    """
    lut = np.array([t.iodine_mg_ml for t in TISSUES], np.float32) * np.float32(params["vessel_iodine_scale"])
    lut[LABEL["liver"]] = params["liver_iodine_mg_ml"]
    iodine = lut[labels]
    rng = np.random.default_rng(params["warp_seed"] + 1)
    texture = 1.0 + params["liver_texture"] * _smooth_field(rng, z, y, x, terms=4, wavelength_mm=(25.0, 70.0))
    liver = labels == LABEL["liver"]
    iodine[liver] *= texture[liver]
    return iodine
