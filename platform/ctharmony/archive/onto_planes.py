"""One series resampled onto another's slice planes and pixel grid, by every plane's true position.

Both volumes are :class:`~ctharmony.archive.volume.Volume` s; their slice planes must be parallel (within
:data:`MAX_ANGLE_DEG`). Each target plane stands for its slab: half the distance to each neighbouring
plane (:meth:`Volume.slab_thickness_mm`, split at the plane). Along the normal:

- thin to thick: the source planes inside the target's slab are averaged (a plane on the slab's edge
  counts half);
- otherwise (fewer than two source planes in the slab): the source is interpolated linearly at the
  target plane between its two neighbouring planes (a plane within :data:`PLANE_TOLERANCE_MM` is taken
  as it is), never across a gap wider than 1.5 source steps.

In plane, every source plane used is sampled at the target's pixel centres (linear interpolation, each
plane at its own ImagePositionPatient, so sheared stacks stay right). ``coverage`` marks the target
voxels that the source covers (the slab inside the source's stack, the pixel inside its image); other
voxels hold ``fill``. A source on the target's exact grid comes back unchanged (identity, bit for bit).

Example:
    >>> import numpy as np
    >>> thin = Volume(np.arange(6, dtype=np.float32)[:, None, None] * np.ones((6, 2, 2), np.float32),
    ...               spacing=(1.0, 1.0, 1.0))
    >>> thick = Volume(np.zeros((2, 2, 2), np.float32), spacing=(3.0, 1.0, 1.0), origin=(0.0, 0.0, 1.0))
    >>> out = resample_onto(thin, thick)
    >>> out.hu[:, 0, 0].tolist(), out.coverage[:, 0, 0].tolist()
    ([1.0, 4.0], [True, True])
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ctharmony.archive.volume import Volume

MAX_ANGLE_DEG = 0.5  # slice planes further apart than this are not resampled (no oblique reslicing)
PLANE_TOLERANCE_MM = 0.01  # as Volume's POSITION_TOLERANCE_MM
PIXEL_TOLERANCE = 1e-4  # of a pixel: a grid this close to the target's is the same grid


class PlanesNotParallel(ValueError):
    """The source's slice planes are tilted against the target's; the message gives the angle."""


@dataclasses.dataclass
class Resampled:
    """The source on the target's grid: ``hu`` (z, y, x) float32, ``coverage`` (bool, same shape) and the
    (target planes, source planes) weight matrix along the normal."""

    hu: np.ndarray
    coverage: np.ndarray
    weights: np.ndarray

    @property
    def planes_covered(self) -> np.ndarray:
        """Per target plane: does the source cover any of it."""
        return self.coverage.reshape(len(self.coverage), -1).any(axis=1)


def plane_angle_deg(a: Volume, b: Volume) -> float:
    """Angle between the slice normals of two volumes (0 for parallel or opposite normals)."""
    cos = abs(float(a.normal @ b.normal)) / max(float(np.linalg.norm(a.normal) * np.linalg.norm(b.normal)), 1e-12)
    return math.degrees(math.acos(min(1.0, cos)))


def _slab_edges(offsets: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Per plane (offsets ascending): distance to its slab's lower and upper edge."""
    if len(offsets) < 2:
        return np.full(1, spacing / 2.0), np.full(1, spacing / 2.0)
    steps = np.diff(offsets)
    below = np.concatenate([[steps[0]], steps]) / 2.0
    above = np.concatenate([steps, [steps[-1]]]) / 2.0
    return below, above


def normal_weights(source: np.ndarray, target: np.ndarray, target_spacing: float,
                   source_spacing: float) -> np.ndarray:
    """(len(target), len(source)) weights along the normal; an all-zero row: the plane is not covered.

    ``source`` and ``target`` are plane offsets (mm) along one normal, each ascending.
    """
    tol = PLANE_TOLERANCE_MM
    weights = np.zeros((len(target), len(source)))
    below, above = _slab_edges(target, target_spacing)
    s_below, s_above = _slab_edges(source, source_spacing)
    lo, hi = source[0] - s_below[0], source[-1] + s_above[-1]  # what the source's slabs span
    max_gap = 1.5 * (float(np.median(np.diff(source))) if len(source) > 1 else source_spacing)
    for m, c in enumerate(target):
        low, high = c - below[m], c + above[m]
        inside = (source >= low - tol) & (source <= high + tol)
        if inside.sum() >= 2:
            if low < lo - tol or high > hi + tol:
                continue  # the slab reaches beyond the source's stack
            edge = np.isclose(source, low, atol=tol) | np.isclose(source, high, atol=tol)
            row = np.where(inside, np.where(edge, 0.5, 1.0), 0.0)
            weights[m] = row / row.sum()
            continue
        near = int(np.argmin(np.abs(source - c)))
        if abs(source[near] - c) <= tol:
            weights[m, near] = 1.0
            continue
        k = int(np.searchsorted(source, c)) - 1  # source[k] < c < source[k + 1]
        if k < 0 or k + 1 >= len(source) or source[k + 1] - source[k] > max_gap:
            continue  # beyond the stack, or inside a gap
        t = (c - source[k]) / (source[k + 1] - source[k])
        weights[m, k], weights[m, k + 1] = 1.0 - t, t
    return weights


def _in_plane(source: Volume, target: Volume, k: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Affine map from target pixel (j, i) of plane ``m`` to source pixel (row, column) of plane ``k``:
    ``(offset (2,), matrix (2, 2))`` with ``[row, column] = offset + matrix @ [j, i]``."""
    ds, dt = source.direction, target.direction
    sy, sx = source.spacing[1], source.spacing[2]
    ty, tx = target.spacing[1], target.spacing[2]
    delta = target.positions[m] - source.positions[k]
    offset = np.array([delta @ ds[:, 1] / sy, delta @ ds[:, 0] / sx])
    matrix = np.array([[dt[:, 1] @ ds[:, 1] * ty / sy, dt[:, 0] @ ds[:, 1] * tx / sy],
                       [dt[:, 1] @ ds[:, 0] * ty / sx, dt[:, 0] @ ds[:, 0] * tx / sx]])
    return offset, matrix


def _sample_plane(image: np.ndarray, offset: np.ndarray, matrix: np.ndarray,
                  shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One source slice at the target's pixels: (values float32, inside bool)."""
    from scipy.ndimage import map_coordinates

    if (image.shape == shape and np.allclose(offset, 0.0, atol=PIXEL_TOLERANCE)
            and np.allclose(matrix, np.eye(2), atol=PIXEL_TOLERANCE)):
        return image.astype(np.float32, copy=False), np.ones(shape, bool)  # the same grid: no interpolation
    j, i = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    rows = offset[0] + matrix[0, 0] * j + matrix[0, 1] * i
    cols = offset[1] + matrix[1, 0] * j + matrix[1, 1] * i
    ny, nx = image.shape
    inside = ((rows >= -PIXEL_TOLERANCE) & (rows <= ny - 1 + PIXEL_TOLERANCE)
              & (cols >= -PIXEL_TOLERANCE) & (cols <= nx - 1 + PIXEL_TOLERANCE))
    values = map_coordinates(image.astype(np.float32, copy=False), [rows, cols], order=1, mode="nearest")
    return values.astype(np.float32, copy=False), inside


def resample_onto(source: Volume, target: Volume, fill: float = -1024.0) -> Resampled:
    """``source`` on ``target``'s slice planes and pixel grid (see the module docstring).

    Raises:
        PlanesNotParallel: the slice planes are more than :data:`MAX_ANGLE_DEG` apart.
    """
    angle = plane_angle_deg(source, target)
    if angle > MAX_ANGLE_DEG:
        raise PlanesNotParallel(f"slice planes {angle:.1f} degrees apart (at most {MAX_ANGLE_DEG} resampled)")
    normal = target.normal
    s_off, t_off = source.positions @ normal, target.positions @ normal
    s_order, t_order = np.argsort(s_off, kind="stable"), np.argsort(t_off, kind="stable")
    sorted_w = normal_weights(s_off[s_order], t_off[t_order], target.spacing[0], source.spacing[0])
    weights = np.zeros_like(sorted_w)
    weights[np.ix_(t_order, s_order)] = sorted_w
    shape = target.shape[1:]
    hu = np.full(target.shape, np.float32(fill), np.float32)
    coverage = np.zeros(target.shape, bool)
    cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
    for m in range(target.shape[0]):
        used = np.nonzero(weights[m])[0]
        if not len(used):
            continue
        total = np.zeros(shape, np.float64) if len(used) > 1 else None
        inside_all = np.ones(shape, bool)
        for k in used:
            offset, matrix = _in_plane(source, target, int(k), m)
            key = (int(k), *np.round(offset, 6), *np.round(matrix, 9).ravel())
            if key not in cache:
                cache[key] = _sample_plane(source.hu[k], offset, matrix, shape)
            values, inside = cache[key]
            inside_all &= inside
            if total is None:
                hu[m] = values if weights[m, k] == 1.0 else values * np.float32(weights[m, k])
            else:
                total += weights[m, k] * values
        if total is not None:
            hu[m] = total.astype(np.float32)
        hu[m][~inside_all] = np.float32(fill)
        coverage[m] = inside_all
    return Resampled(hu=hu, coverage=coverage, weights=weights)
