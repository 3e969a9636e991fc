"""Where every voxel of a phantom series lies: axial grids, and the irregular ones real archives hold.

A :class:`Grid` is ``shape`` (z, y, x) voxels, ``spacing`` (z, y, x) mm and ``origin``, the LPS (x, y, z)
of voxel (0, 0, 0) = ImagePositionPatient of slice 0. By default slices are axial and ``spacing[0]``
apart. Two options describe what scanners also send:

- ``positions``: the ImagePositionPatient of every slice, z strictly increasing: gaps (missing slices),
  uneven spacing, or any stack of parallel planes (e.g. a converter's oblique output grid);
- ``tilt_deg``: gantry tilt t (DICOM GantryDetectorTilt). Rows stay along +x, columns run along
  (0, cos t, sin t) (ImageOrientationPatient ``1 0 0 0 cos(t) sin(t)``, as written for GE tilted scans)
  and the scanner steps ImagePositionPatient along the table axis only, so the stack is sheared: voxel
  (k, i, j) lies at ``position_k + j dx (1, 0, 0) + i dy (0, cos t, sin t)``. ``spacing[0]`` is then the
  step along the slice normal, not along the table.

The anatomy is evaluated at exactly these points, so a reader that misplaces a slice is caught.

Example:
    >>> g = Grid(shape=(2, 3, 3), spacing=(2.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0),
    ...          positions=((0.0, 0.0, 0.0), (0.0, 0.0, 5.0)))
    >>> g.is_regular, g.slice_positions()[:, 2].tolist()
    (False, [0.0, 5.0])
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np


def exact_decimal(value: float) -> float:
    """``value`` as it reads back from a DICOM decimal string written with 10 significant digits."""
    return float(f"{value:.10g}")


@dataclasses.dataclass(frozen=True)
class Grid:
    """Voxel grid: shape (z, y, x), spacing (z, y, x) mm, origin = LPS (x, y, z) of voxel (0, 0, 0)."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    positions: tuple[tuple[float, float, float], ...] | None = None  # per slice (None: origin + k spacing[0] z)
    tilt_deg: float = 0.0  # gantry tilt: columns along (0, cos t, sin t)

    def __post_init__(self) -> None:
        if self.positions is not None:
            p = np.asarray(self.positions, np.float64)
            if p.shape != (self.shape[0], 3):
                raise ValueError(f"Grid: slice positions of shape {p.shape} for {self.shape[0]} slices")
            if np.any(np.diff(p[:, 2]) <= 0):
                raise ValueError("Grid: slice positions must go up in z strictly")
            if tuple(p[0]) != tuple(float(o) for o in self.origin):
                raise ValueError(f"Grid: first slice at {tuple(p[0])} but origin {self.origin}")
        if not abs(self.tilt_deg) < 45.0:
            raise ValueError(f"Grid: gantry tilt {self.tilt_deg} degrees is outside (-45, 45)")

    @property
    def is_regular(self) -> bool:
        """Axial slices at a constant step (what a NIfTI / SimpleITK image can hold)."""
        return self.positions is None and self.tilt_deg == 0.0

    def column_cosines(self) -> tuple[float, float, float]:
        """LPS direction of the columns (down the rows), exact as written to DICOM."""
        if self.tilt_deg == 0.0:
            return (0.0, 1.0, 0.0)
        t = math.radians(self.tilt_deg)
        return (0.0, exact_decimal(math.cos(t)), exact_decimal(math.sin(t)))

    def orientation(self) -> tuple[float, ...]:
        """ImageOrientationPatient: row cosines then column cosines."""
        return (1.0, 0.0, 0.0, *self.column_cosines())

    def normal(self) -> np.ndarray:
        """Unit slice normal (row x column)."""
        n = np.cross((1.0, 0.0, 0.0), self.column_cosines())
        return n / np.linalg.norm(n)

    def slice_positions(self) -> np.ndarray:
        """ImagePositionPatient of every slice, (nz, 3) LPS mm."""
        if self.positions is not None:
            return np.asarray(self.positions, np.float64)
        nz, dz, (ox, oy, oz) = self.shape[0], self.spacing[0], self.origin
        z = oz + dz * np.arange(nz)
        return np.stack([np.full_like(z, ox), np.full_like(z, oy), z], axis=1)

    def coordinates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable LPS (z, y, x) mm of every voxel (size-1 axes where a coordinate does not vary)."""
        (_, ny, nx), (_, dy, dx) = self.shape, self.spacing
        p = self.slice_positions()
        _, cos_t, sin_t = self.column_cosines()
        rows, cols = np.arange(ny), np.arange(nx)
        row_y = dy * rows if self.tilt_deg == 0.0 else dy * cos_t * rows
        x = _offset(p[:, 0], dx * cols)[:, None, :]
        y = _offset(p[:, 1], row_y)[:, :, None]
        z = p[:, 2][:, None, None] if self.tilt_deg == 0.0 else p[:, 2][:, None, None] + (dy * sin_t * rows)[:, None]
        return z, y, x

    def regular_cover(self) -> Grid:
        """The axial grid (same x, y sampling, ``spacing[0]`` apart) covering every voxel of this one."""
        if self.is_regular:
            return self
        z, y, x = self.coordinates()
        dz, dy, dx = self.spacing
        counts = [int(math.ceil((float(a.max()) - float(a.min())) / d - 1e-9)) + 1
                  for a, d in ((z, dz), (y, dy), (x, dx))]
        origin = (round(float(x.min()), 4), round(float(y.min()), 4), round(float(z.min()), 4))
        return Grid(shape=tuple(counts), spacing=self.spacing, origin=origin)


def _offset(starts: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """``starts[k] + steps[n]`` as (k, n); (1, n) when every start is the same (the regular case)."""
    if np.all(starts == starts[0]):
        return (starts[0] + steps)[None, :]
    return starts[:, None] + steps[None, :]


def _along_z(grid: Grid, z: list[float], **changes) -> Grid:
    """``grid`` with slices at table positions ``z`` (x, y of the origin kept)."""
    ox, oy = grid.origin[:2]
    positions = tuple((ox, oy, v) for v in z)
    return dataclasses.replace(grid, origin=positions[0], positions=positions, **changes)


def tilted(grid: Grid, tilt_deg: float) -> Grid:
    """``grid``'s slab scanned with the gantry tilted by ``tilt_deg``.

    Every plane turns about the x axis through its centre row (the isocentre line), so image centres stay
    on the table axis; table positions are ``spacing[0] / cos t`` apart (rounded to 1 µm), which keeps the
    slices contiguous along their normal. Positions are rounded to 0.1 µm, as DICOM decimal strings hold them.
    """
    (nz, ny, _), (dz, dy, _), (ox, oy, oz) = grid.shape, grid.spacing, grid.origin
    _, cos_t, sin_t = dataclasses.replace(grid, tilt_deg=tilt_deg).column_cosines()
    half = (ny - 1) / 2.0 * dy
    step = round(dz / cos_t, 3)
    z0 = round(oz + (nz - 1) / 2.0 * (dz - step) - half * sin_t, 4)
    shifted = dataclasses.replace(grid, origin=(ox, round(oy + half * (1.0 - cos_t), 4), z0))
    return _along_z(shifted, [round(z0 + k * step, 4) for k in range(nz)], tilt_deg=tilt_deg)


def with_gap(grid: Grid, missing: int = 2) -> Grid:
    """``grid`` with ``missing`` slices absent after the middle one: the same slice count, one longer step."""
    nz, dz, oz = grid.shape[0], grid.spacing[0], grid.origin[2]
    if nz < 4 or missing < 1:
        raise ValueError(f"a gap needs >= 4 slices and >= 1 missing slice, got {nz} slices, {missing} missing")
    after = nz // 2
    return _along_z(grid, [round(oz + (k if k < after else k + missing) * dz, 4) for k in range(nz)])


def uneven(grid: Grid, rng: np.random.Generator, spread: float = 0.4) -> Grid:
    """``grid`` with uneven table steps: each drawn in ``spacing[0] * [1 - spread, 1 + spread]`` (10 µm steps)."""
    nz, dz, oz = grid.shape[0], grid.spacing[0], grid.origin[2]
    if nz < 3:
        raise ValueError(f"variable spacing needs >= 3 slices, got {nz}")
    steps = np.round(dz * rng.uniform(1.0 - spread, 1.0 + spread, nz - 1), 2)
    return _along_z(grid, [round(oz + float(v), 4) for v in np.concatenate([[0.0], np.cumsum(steps)])])
