"""Canonical in-plane orientation: the slice layout the 2-D networks always see.

DICOM lets a series store its slices in any of the 8 in-plane layouts (the symmetries of the square:
rows and columns swapped or not, each axis reversed or not); ImageOrientationPatient says which. A
2-D network trained on one layout sees the liver on the wrong side in another, so every slice is
brought to the radiologist's axial display first: columns increase toward the patient's Left (+x in
LPS), rows toward Posterior (+y), i.e. the patient's right on the image's left and anterior at the
top. Coronal series (normal closest to y) go to (+x, -z), sagittal ones (normal closest to x) to
(+y, -z), the usual display of those planes. The layout is chosen by the largest absolute direction
cosines, so tilted and oblique slices get their nearest canonical layout; the mapping is a pure
permutation of voxels and :meth:`InPlaneTransform.invert` undoes it exactly. The slice axis is never
touched.

Example:
    >>> import numpy as np
    >>> flipped = np.diag([-1.0, -1.0, 1.0])  # stored rotated 180 degrees in plane
    >>> transform = canonical_transform(flipped)
    >>> transform
    InPlaneTransform(transpose=False, flip_rows=True, flip_columns=True)
    >>> slices = np.arange(6.0).reshape(1, 2, 3)
    >>> transform.apply(slices)[0].tolist()
    [[5.0, 4.0, 3.0], [2.0, 1.0, 0.0]]
    >>> bool((transform.invert(transform.apply(slices)) == slices).all())
    True
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import numpy as np

# display targets (column axis, row axis) in LPS, by the patient axis closest to the slice normal
_TARGETS = {
    "sagittal": (np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, -1.0])),
    "coronal": (np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, -1.0])),
    "axial": (np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])),
}
_PLANES = ("sagittal", "coronal", "axial")  # index = LPS axis of the normal
_TOLERANCE = 1e-3


class OrientationError(ValueError):
    """A direction matrix that does not describe a slice plane (not unit, not orthogonal, not finite)."""


@dataclasses.dataclass(frozen=True)
class InPlaneTransform:
    """One of the 8 in-plane symmetries: swap rows and columns first, then reverse either axis.

    Works on any array whose last two axes are (rows, columns): a slice, a (z, y, x) volume, an
    (N, C, H, W) batch.
    """

    transpose: bool = False
    flip_rows: bool = False
    flip_columns: bool = False

    @property
    def is_identity(self) -> bool:
        return not (self.transpose or self.flip_rows or self.flip_columns)

    def apply(self, array: np.ndarray) -> np.ndarray:
        """Stored layout -> transformed layout (a contiguous copy unless this is the identity)."""
        array = np.asarray(array)
        if self.is_identity:
            return array
        _check_ndim(array)
        if self.transpose:
            array = np.swapaxes(array, -2, -1)
        if self.flip_rows:
            array = array[..., ::-1, :]
        if self.flip_columns:
            array = array[..., ::-1]
        return np.ascontiguousarray(array)

    def invert(self, array: np.ndarray) -> np.ndarray:
        """Transformed layout -> stored layout: exactly undoes :meth:`apply`."""
        array = np.asarray(array)
        if self.is_identity:
            return array
        _check_ndim(array)
        if self.flip_columns:
            array = array[..., ::-1]
        if self.flip_rows:
            array = array[..., ::-1, :]
        if self.transpose:
            array = np.swapaxes(array, -2, -1)
        return np.ascontiguousarray(array)

    def direction(self, direction: Any) -> np.ndarray:
        """The direction matrix (columns: column, row, slice axes in LPS) of the transformed layout."""
        matrix = np.asarray(direction, dtype=np.float64).reshape(3, 3)
        columns, rows = (matrix[:, 1], matrix[:, 0]) if self.transpose else (matrix[:, 0], matrix[:, 1])
        return np.column_stack([-columns if self.flip_columns else columns,
                                -rows if self.flip_rows else rows, matrix[:, 2]])

    def spacing(self, spacing: Any) -> tuple[float, float, float]:
        """Spacing (z, y, x) of the transformed layout."""
        z, y, x = (float(s) for s in spacing)
        return (z, x, y) if self.transpose else (z, y, x)

    def origin_offset(self, shape: Any, spacing: Any, direction: Any) -> np.ndarray:
        """LPS vector (mm) from the stored voxel (k, 0, 0) to the transformed layout's voxel (k, 0, 0)."""
        rows, columns = int(shape[-2]), int(shape[-1])
        if self.transpose:
            rows, columns = columns, rows
        row0 = rows - 1 if self.flip_rows else 0  # transformed (0, 0) in the transposed array
        column0 = columns - 1 if self.flip_columns else 0
        j, i = (column0, row0) if self.transpose else (row0, column0)  # ... in the stored array
        matrix = np.asarray(direction, dtype=np.float64).reshape(3, 3)
        return matrix[:, 0] * i * float(spacing[2]) + matrix[:, 1] * j * float(spacing[1])


IDENTITY = InPlaneTransform()
SYMMETRIES = tuple(InPlaneTransform(*flags) for flags in itertools.product((False, True), repeat=3))


def slice_plane(direction: Any) -> str:
    """``"axial"``, ``"coronal"`` or ``"sagittal"``: the patient axis closest to the slice normal."""
    row, column = _in_plane_axes(direction)
    return _PLANES[int(np.argmax(np.abs(np.cross(row, column))))]


def canonical_transform(direction: Any | None) -> InPlaneTransform:
    """The in-plane symmetry that brings slices stored with ``direction`` to the canonical display.

    Args:
        direction: the Volume's 3 x 3 direction (columns: row cosines, column cosines, slice axis),
            or its 9 values row-major, as the pipeline rows carry it. None: taken as canonical.

    Raises:
        OrientationError: the first two columns are not orthogonal unit vectors.
    """
    if direction is None:
        return IDENTITY
    row, column = _in_plane_axes(direction)
    target_x, target_y = _TARGETS[slice_plane(direction)]
    keep = abs(row @ target_x) + abs(column @ target_y)
    swap = abs(column @ target_x) + abs(row @ target_y)
    transpose = bool(swap > keep + 1e-9)  # exact 45-degree ties keep the stored layout
    new_x, new_y = (column, row) if transpose else (row, column)
    return InPlaneTransform(transpose, flip_rows=bool(new_y @ target_y < 0), flip_columns=bool(new_x @ target_x < 0))


def transform_volume(volume: Any, transform: InPlaneTransform) -> Any:
    """``volume`` (a :class:`~ctharmony.archive.volume.Volume`) with its voxels laid out by ``transform``.

    The physical image is unchanged: spacing, origin, direction (and per-slice ``positions`` where the
    Volume has them) are updated with the voxels.
    """
    if transform.is_identity:
        return volume
    offset = transform.origin_offset(volume.shape, volume.spacing, volume.direction)
    changes: dict[str, Any] = {
        "hu": transform.apply(volume.hu),
        "spacing": transform.spacing(volume.spacing),
        "origin": tuple(np.asarray(volume.origin, dtype=np.float64) + offset),
        "direction": transform.direction(volume.direction),
    }
    if getattr(volume, "positions", None) is not None:
        changes["positions"] = np.asarray(volume.positions, dtype=np.float64) + offset
    return dataclasses.replace(volume, **changes)


def to_canonical(volume: Any) -> Any:
    """``volume`` in the canonical in-plane layout (the same physical image); see the module docstring."""
    return transform_volume(volume, canonical_transform(volume.direction))


def _in_plane_axes(direction: Any) -> tuple[np.ndarray, np.ndarray]:
    try:
        matrix = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    except (TypeError, ValueError) as err:
        raise OrientationError(f"direction must be 3 x 3 (or 9 values), got {direction!r}") from err
    row, column = matrix[:, 0], matrix[:, 1]
    if not (np.isfinite(matrix[:, :2]).all() and abs(np.linalg.norm(row) - 1) < _TOLERANCE
            and abs(np.linalg.norm(column) - 1) < _TOLERANCE and abs(row @ column) < _TOLERANCE):
        raise OrientationError(f"direction cosines {row.round(4).tolist()}, {column.round(4).tolist()} are not "
                               "orthogonal unit vectors (ImageOrientationPatient)")
    return row, column


def _check_ndim(array: np.ndarray) -> None:
    if array.ndim < 2:
        raise ValueError(f"expected an array whose last two axes are (rows, columns), got shape {array.shape}")
