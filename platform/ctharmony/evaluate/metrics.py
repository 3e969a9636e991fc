"""Per-exam segmentation metrics: Dice, liver volume, volume difference; mask files and the truth on their grid.

Masks are binary arrays indexed ``(z, y, x)``; spacing is ``(z, y, x)`` in mm. Mask files follow the
conversion results contract: ``numpy.savez_compressed(path, mask=uint8 (z,y,x), spacing=float64[3])``,
optionally with ``origin`` (LPS x, y, z) and ``direction`` (3 x 3, columns = i, j, k axes).

Example:
    >>> import numpy as np
    >>> a = np.zeros((1, 2, 2), np.uint8); a[0, 0] = 1
    >>> dice(a, a), liver_volume_ml(a, (2.0, 1.0, 1.0))
    (1.0, 0.004)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np


class MaskFileError(ValueError):
    """A mask or truth file cannot be read or does not match the series it belongs to."""


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice similarity coefficient ``2|A∩B| / (|A| + |B|)`` of two binary masks of one shape.

    Both masks empty: 1.0 (they agree perfectly that there is no liver). One empty: 0.0.
    """
    a = np.asarray(pred).astype(bool, copy=False)
    b = np.asarray(ref).astype(bool, copy=False)
    if a.shape != b.shape:
        raise ValueError(f"dice: mask shapes differ: {a.shape} vs {b.shape}")
    return dice_from_counts(int(np.logical_and(a, b).sum()), int(a.sum()), int(b.sum()))


def dice_from_counts(intersection: float, pred: float, ref: float) -> float:
    """Dice from voxel counts (e.g. summed over volumes or all-reduced over workers); 1.0 when both are empty."""
    total = float(pred) + float(ref)
    return 1.0 if total == 0 else 2.0 * float(intersection) / total


def liver_volume_ml(mask: np.ndarray, spacing: tuple[float, float, float] | np.ndarray) -> float:
    """Volume of the foreground voxels in millilitres (spacing in mm, any order: only the product counts)."""
    voxel_ml = float(np.prod(np.asarray(spacing, dtype=np.float64))) / 1000.0
    return float(np.count_nonzero(mask)) * voxel_ml


def volume_difference(volume_ml: float, reference_ml: float) -> tuple[float, float]:
    """Signed difference ``V - V_ref`` in mL and as % of the reference volume (NaN when the reference is 0)."""
    diff = float(volume_ml) - float(reference_ml)
    ratio = 100.0 * diff / float(reference_ml) if reference_ml > 0 else float("nan")
    return diff, ratio


@dataclasses.dataclass
class MaskFile:
    """A mask read from a results ``.npz``: voxels, spacing and (when stored) origin and direction."""

    mask: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float] | None = None
    direction: np.ndarray | None = None
    positions: np.ndarray | None = None  # (z, 3) LPS position of every slice, when stored

    @property
    def volume_ml(self) -> float:
        return mask_volume_ml(self.mask, self.spacing, self.direction, self.positions)


def mask_volume_ml(mask: np.ndarray, spacing: Any, direction: np.ndarray | None = None,
                   positions: np.ndarray | None = None) -> float:
    """Foreground volume in mL, integrated over the true slice planes when their positions are known."""
    if positions is None or direction is None:
        return liver_volume_ml(mask, spacing)
    from ctharmony.archive.volume import Volume

    return Volume(mask, tuple(spacing), direction=direction, positions=positions).volume_ml(mask)


def load_mask(path: str | Path) -> MaskFile:
    """Read a mask ``.npz`` of the results contract; errors name the file and the reason."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            mask = np.asarray(data["mask"]).astype(np.uint8, copy=False)
            spacing = tuple(float(s) for s in np.asarray(data["spacing"], dtype=np.float64).ravel())
            origin = tuple(float(v) for v in data["origin"]) if "origin" in data else None
            direction = np.asarray(data["direction"], np.float64).reshape(3, 3) if "direction" in data else None
            positions = np.asarray(data["positions"], np.float64).reshape(-1, 3) if "positions" in data else None
    except (OSError, KeyError, ValueError) as err:
        raise MaskFileError(f"cannot read mask file {path}: {err}") from err
    if mask.ndim != 3 or len(spacing) != 3:
        raise MaskFileError(f"mask file {path}: expected a (z, y, x) mask and 3 spacings, got "
                            f"shape {mask.shape} and {len(spacing)} spacings")
    if positions is not None and len(positions) != mask.shape[0]:
        raise MaskFileError(f"mask file {path}: {len(positions)} slice positions for {mask.shape[0]} slices")
    return MaskFile(mask=mask, spacing=spacing, origin=origin, direction=direction,  # type: ignore[arg-type]
                    positions=positions)


def truth_on_grid(
    truth_path: str | Path,
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    origin: tuple[float, float, float] | None = None,
    direction: np.ndarray | None = None,
    positions: np.ndarray | None = None,
) -> np.ndarray:
    """A true mask file (e.g. NIfTI) as a ``(z, y, x)`` uint8 array on a series grid, in physical space.

    With the grid's origin and direction, the truth is resampled onto it (nearest neighbour) unless the
    geometries already agree; with per-slice ``positions`` off a regular grid (gantry tilt, gaps), each slice
    plane is sampled where it really lies. Without them, the truth must have the grid's shape and spacing.
    """
    import SimpleITK as sitk

    truth_path = Path(truth_path)
    try:
        truth = sitk.ReadImage(str(truth_path))
    except RuntimeError as err:
        raise MaskFileError(f"cannot read true mask {truth_path}: {err}") from err
    size_xyz, spacing_xyz = tuple(int(s) for s in shape[::-1]), tuple(float(s) for s in spacing[::-1])
    if origin is None or direction is None:
        same_grid = truth.GetSize() == size_xyz and np.allclose(truth.GetSpacing(), spacing_xyz, atol=1e-3)
        if not same_grid:
            raise MaskFileError(
                f"true mask {truth_path} has size {truth.GetSize()} spacing {truth.GetSpacing()}, the series "
                f"{size_xyz} {spacing_xyz}, and the series' origin/direction are unknown: cannot align them"
            )
        return (sitk.GetArrayFromImage(truth) > 0).astype(np.uint8)
    if positions is not None and direction is not None:
        from ctharmony.archive.volume import Volume

        probe = Volume(np.zeros((len(positions), 1, 1), np.uint8), tuple(spacing), direction=direction,
                       positions=positions)
        if not probe.is_regular:
            binary = sitk.Cast(truth > 0, sitk.sitkUInt8)
            planes = []
            for position in probe.positions:  # one single-slice grid per true plane
                plane = sitk.Image([size_xyz[0], size_xyz[1], 1], sitk.sitkUInt8)
                plane.SetSpacing((spacing_xyz[0], spacing_xyz[1], 1.0))
                plane.SetOrigin(tuple(float(v) for v in position))
                plane.SetDirection(tuple(np.asarray(direction, np.float64).ravel()))
                resampled = sitk.Resample(binary, plane, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                                          sitk.sitkUInt8)
                planes.append(sitk.GetArrayFromImage(resampled)[0])
            return np.stack(planes).astype(np.uint8)
    grid = sitk.Image(list(size_xyz), sitk.sitkUInt8)
    grid.SetSpacing(spacing_xyz)
    grid.SetOrigin(tuple(float(v) for v in origin))
    grid.SetDirection(tuple(np.asarray(direction, np.float64).ravel()))
    if _same_geometry(truth, grid):
        return (sitk.GetArrayFromImage(truth) > 0).astype(np.uint8)
    binary = sitk.Cast(truth > 0, sitk.sitkUInt8)
    resampled = sitk.Resample(binary, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return sitk.GetArrayFromImage(resampled).astype(np.uint8)


def _same_geometry(a: Any, b: Any, tol: float = 1e-3) -> bool:
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tol)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tol)
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=tol)
    )
