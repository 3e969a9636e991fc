"""The phantom's ground truth at any geometry: noise-free images and liver masks in a series' own slices.

A regular series' true mask is a NIfTI on the series' grid (``masks/<StudyInstanceUID>.nii.gz``). A
sheared (gantry tilt) or irregular (gap, uneven spacing) series cannot be one NIfTI image, so its study
also gets ``masks/<StudyInstanceUID>.slices.npz``: the mask in the series' own slice layout (slice k =
the series' slice k, evaluated from the anatomy at that slice's plane) with the exact geometry:

- ``mask``: uint8 (z, y, x);
- ``positions``: float64 (z, 3), ImagePositionPatient of every slice (LPS mm);
- ``orientation``: float64 (6,), ImageOrientationPatient (row cosines, column cosines);
- ``pixel_spacing``: float64 (2,), DICOM PixelSpacing (row spacing = between rows, column spacing);
- ``slice_thickness``: float64 (), the nominal thickness along the slice normal.

Example::

    truth = load_slice_mask(Path("ph/masks/1.2.3.slices.npz"))
    truth.positions.shape
    # -> (12, 3)
"""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ctharmony.phantom import physics
from ctharmony.scanmodel.anatomy import build_anatomy
from ctharmony.scanmodel.grid import Grid
from ctharmony.scanmodel.sites import ImageSite

SLICE_MASK_SUFFIX = ".slices.npz"
_FIELDS = ("mask", "positions", "orientation", "pixel_spacing", "slice_thickness")


@dataclasses.dataclass(frozen=True)
class SliceMask:
    """A true mask in a series' own slice layout, with that layout's exact geometry."""

    mask: np.ndarray
    positions: np.ndarray
    orientation: np.ndarray
    pixel_spacing: np.ndarray
    slice_thickness: float

    @classmethod
    def from_grid(cls, mask: np.ndarray, grid: Grid) -> SliceMask:
        return cls(mask=mask.astype(np.uint8), positions=grid.slice_positions(),
                   orientation=np.asarray(grid.orientation(), np.float64),
                   pixel_spacing=np.asarray(grid.spacing[1:], np.float64), slice_thickness=float(grid.spacing[0]))

    def points(self) -> np.ndarray:
        """LPS position (mm) of every voxel, (z, y, x, 3)."""
        row, column = self.orientation[:3], self.orientation[3:]
        ny, nx = self.mask.shape[1:]
        i = np.arange(ny)[:, None, None] * self.pixel_spacing[0] * column
        j = np.arange(nx)[None, :, None] * self.pixel_spacing[1] * row
        return self.positions[:, None, None, :] + (i + j)[None]


def save_slice_mask(truth: SliceMask, path: Path) -> None:
    """Write ``truth`` as a compressed ``.npz`` (see the module docstring for its arrays)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("wb") as handle:
            np.savez_compressed(handle, **{f: np.asarray(getattr(truth, f)) for f in _FIELDS})
    except OSError as err:
        raise OSError(f"cannot write slice mask {path}: {err}") from err


def load_slice_mask(path: Path) -> SliceMask:
    """Read a ``.slices.npz`` true mask; a missing or malformed file raises an error naming it."""
    try:
        with np.load(path) as data:
            arrays = {f: data[f] for f in _FIELDS}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not a phantom slice mask ({err})") from err
    truth = SliceMask(**{**arrays, "slice_thickness": float(arrays["slice_thickness"])})
    if truth.mask.ndim != 3 or truth.positions.shape != (truth.mask.shape[0], 3) or truth.orientation.shape != (6,):
        raise ValueError(f"{path}: mask {truth.mask.shape}, positions {truth.positions.shape} and orientation "
                         f"{truth.orientation.shape} do not fit together")
    return truth


def points_grid(points: np.ndarray, tolerance_mm: float = 0.05) -> tuple[Grid, tuple[bool, bool, bool]]:
    """The :class:`Grid` through ``points`` (z, y, x, 3) LPS mm, and the array axes flipped to get it.

    The points must be a stack of parallel planes whose rows run along ±x and whose columns lie in the
    y-z plane (axial, or tilted about x as gantry-tilted series and their corrections are); any slice
    positions. Raises ValueError when they are not (or deviate by more than ``tolerance_mm``).
    """
    points = np.asarray(points, np.float64)
    flips = (bool(points[-1, 0, 0, 2] < points[0, 0, 0, 2]), bool(points[0, -1, 0, 1] < points[0, 0, 0, 1]),
             bool(points[0, 0, -1, 0] < points[0, 0, 0, 0]))
    p = points[tuple(slice(None, None, -1) if f else slice(None) for f in flips)]
    row, column = p[0, 0, min(1, p.shape[2] - 1)] - p[0, 0, 0], p[0, min(1, p.shape[1] - 1), 0] - p[0, 0, 0]
    dx, dy = float(np.linalg.norm(row)), float(np.linalg.norm(column))
    if not (np.allclose(row / dx, (1, 0, 0), atol=1e-4) and abs(column[0]) < 1e-4 * dy and column[1] > 0.7 * dy):
        raise ValueError(f"rows along {np.round(row / dx, 4).tolist()} and columns along "
                         f"{np.round(column / dy, 4).tolist()}: need rows along +-x and columns in the y-z plane")
    positions = tuple(tuple(float(v) for v in q) for q in p[:, 0, 0])
    steps = np.linalg.norm(np.diff(p[:, 0, 0], axis=0), axis=1)
    grid = Grid(shape=p.shape[:3], spacing=(float(np.median(steps)) if steps.size else dy, dy, dx),
                origin=positions[0], positions=positions, tilt_deg=float(np.degrees(np.arctan2(column[2], column[1]))))
    z, y, x = grid.coordinates()
    error = np.abs(np.stack(np.broadcast_arrays(x, y, z), axis=-1) - p).max()
    if error > tolerance_mm:
        raise ValueError(f"the points are not a stack of planes as described: they deviate by {error:.3f} mm")
    return grid, flips


def image_points(image: Any) -> np.ndarray:
    """LPS position (mm) of every voxel of a ``SimpleITK.Image``, (z, y, x, 3)."""
    size = image.GetSize()
    index = np.stack(np.meshgrid(*(np.arange(n) for n in size[::-1]), indexing="ij"), axis=-1)[..., ::-1]
    direction = np.asarray(image.GetDirection(), np.float64).reshape(3, 3)
    steps = index * np.asarray(image.GetSpacing(), np.float64)
    return np.asarray(image.GetOrigin(), np.float64) + steps @ direction.T


def noise_free_at(params: dict[str, Any], site: ImageSite, points: np.ndarray, protocol: str = "M80") -> np.ndarray:
    """The noise-free ``protocol`` image at ``points`` (z, y, x, 3), a stack of planes (see :func:`points_grid`)."""
    grid, flips = points_grid(points)
    truth = noise_free(params, site, grid, (protocol,))[protocol]
    return truth[tuple(slice(None, None, -1) if f else slice(None) for f in flips)]


def noise_free(params: dict[str, Any], site: ImageSite, grid: Grid, protocols: tuple[str, ...] = ("M80",)
               ) -> dict[str, np.ndarray]:
    """The noise-free reconstructions (HU, float32) of a patient at ``grid``'s voxels, any geometry.

    Uses the same anatomy and image formation as the archive (in-plane system blur included), with zero
    noise; sample a converter's output grid with it to check where that converter put each voxel.
    """
    images = physics.render(build_anatomy(params, grid), site, np.random.default_rng(0), noise_sd=0.0)
    return {p: images[p] for p in protocols}
