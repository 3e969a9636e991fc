"""The ``Volume`` contract: HU voxels plus the exact geometry and identity of the series they came from.

Geometry follows DICOM's patient coordinate system (LPS) and SimpleITK's conventions:

- ``hu``: float32 array indexed ``(z, y, x)`` = (slice, row, column);
- ``spacing``: ``(z, y, x)`` in mm; ``z`` is the median step between slice planes along their normal
  (a summary: the exact planes are in ``positions``), never SliceThickness;
- ``origin``: LPS position ``(x, y, z)`` in mm of voxel ``(0, 0, 0)`` (``positions[0]``);
- ``direction``: 3 x 3 matrix whose columns are the LPS unit vectors of the column (i) and row (j) index
  axes and the slice normal (SimpleITK's direction, row-major when flattened);
- ``positions``: ``(z, 3)`` ImagePositionPatient of every slice, exactly as the scanner wrote it, so gantry
  tilt (slices sheared along the column axis), gaps and uneven spacing survive every stage;
- ``tags``: identifying tags of the source series (StudyInstanceUID, SeriesInstanceUID,
  FrameOfReferenceUID, SOPInstanceUIDs, ...); never patient identity (the catalog holds the pseudonymous key).

A regular grid (NIfTI, SimpleITK, 3-D evaluation) is only ever made by :meth:`Volume.resample_regular`,
which says so in the tags; ``to_sitk`` refuses an irregular volume instead of dropping its geometry.

Example:
    >>> import numpy as np
    >>> vol = Volume(np.zeros((3, 2, 2), np.float32), spacing=(2.0, 0.5, 0.5),
    ...              positions=[[0, 0, 0], [0, 0, 2.0], [0, 0, 6.0]])
    >>> vol.index_to_physical((2, 0, 0)).tolist(), vol.is_regular, vol.slab_thickness_mm().tolist()
    ([0.0, 0.0, 6.0], False, [2.0, 3.0, 4.0])
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

POSITION_TOLERANCE_MM = 0.01


@dataclasses.dataclass
class Volume:
    """A CT volume in HU with its per-slice LPS geometry and source-series tags."""

    hu: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = dataclasses.field(default_factory=lambda: np.eye(3))
    tags: dict[str, Any] = dataclasses.field(default_factory=dict)
    positions: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.hu = np.asarray(self.hu)
        if self.hu.ndim != 3:
            raise ValueError(f"Volume.hu must be 3-D (z, y, x), got shape {self.hu.shape}")
        self.spacing = tuple(float(s) for s in self.spacing)  # type: ignore[assignment]
        self.direction = np.asarray(self.direction, dtype=np.float64).reshape(3, 3)
        if self.positions is None:
            origin = np.asarray(self.origin, dtype=np.float64)
            steps = np.arange(self.hu.shape[0])[:, None] * self.spacing[0]
            self.positions = origin + steps * self.direction[:, 2]
        self.positions = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
        if len(self.positions) != self.hu.shape[0]:
            raise ValueError(f"{len(self.positions)} slice positions for {self.hu.shape[0]} slices")
        self.origin = tuple(float(v) for v in self.positions[0])  # type: ignore[assignment]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.hu.shape)  # type: ignore[return-value]

    @property
    def normal(self) -> np.ndarray:
        """Unit normal of the slice planes (LPS)."""
        return self.direction[:, 2]

    def plane_offsets_mm(self) -> np.ndarray:
        """Each slice plane's distance along the normal from the first one's (mm)."""
        return (self.positions - self.positions[0]) @ self.normal

    @property
    def is_regular(self) -> bool:
        """True when every slice sits on ``origin + k * spacing[0] * normal`` (within 0.01 mm)."""
        expected = self.positions[0] + np.arange(self.shape[0])[:, None] * self.spacing[0] * self.normal
        return bool(np.all(np.abs(self.positions - expected) <= POSITION_TOLERANCE_MM))

    @property
    def tilt_degrees(self) -> float:
        """Angle between the line through the slice positions and the slice normal (gantry tilt)."""
        if self.shape[0] < 2:
            return 0.0
        span = self.positions[-1] - self.positions[0]
        cos = abs(float(span @ self.normal)) / max(float(np.linalg.norm(span)), 1e-9)
        return math.degrees(math.acos(min(1.0, cos)))

    def slab_thickness_mm(self) -> np.ndarray:
        """Thickness each slice stands for: half the distance to each neighbouring plane, along the normal.

        A gapped or unevenly spaced series gets its true distances (the slices beside a gap stand for half
        of it each); a single slice stands for ``spacing[0]``.
        """
        offsets = self.plane_offsets_mm()
        if len(offsets) < 2:
            return np.full(len(offsets), self.spacing[0])
        steps = np.abs(np.diff(offsets))
        before = np.concatenate([[steps[0]], steps])
        after = np.concatenate([steps, [steps[-1]]])
        return (before + after) / 2.0

    def volume_ml(self, mask: np.ndarray) -> float:
        """Volume (mL) of the non-zero voxels of ``mask`` (same shape), integrated over the true slice planes."""
        mask = np.asarray(mask)
        if mask.shape != self.shape:
            raise ValueError(f"mask shape {mask.shape} differs from the volume's {self.shape}")
        per_slice = np.count_nonzero(mask.reshape(mask.shape[0], -1), axis=1)
        pixel_mm2 = self.spacing[1] * self.spacing[2]
        return float(np.sum(per_slice * self.slab_thickness_mm()) * pixel_mm2 / 1000.0)

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel of the nominal grid in millilitres (use :meth:`volume_ml` for masks)."""
        return float(np.prod(self.spacing)) / 1000.0

    def index_to_physical(self, zyx: Any) -> np.ndarray:
        """LPS position (x, y, z) in mm of a voxel index given as (z, y, x); slices by their true position.

        A fractional slice index lies between its two neighbouring planes; beyond the stack, the nearest
        step is extended.
        """
        k, j, i = (float(v) for v in zyx)
        count = self.shape[0]
        if count == 1:
            plane = self.positions[0] + k * self.spacing[0] * self.normal
        else:
            low = int(min(max(math.floor(k), 0), count - 2))  # the step k lies on (or the nearest one)
            plane = self.positions[low] + (k - low) * (self.positions[low + 1] - self.positions[low])
        return plane + self.direction[:, :2] @ np.array([i * self.spacing[2], j * self.spacing[1]])

    def with_hu(self, hu: np.ndarray, **tags: Any) -> Volume:
        """A new Volume with other voxels (same shape) and the same geometry; ``tags`` are merged."""
        if hu.shape != self.hu.shape:
            raise ValueError(f"shape {hu.shape} differs from the volume's {self.hu.shape}")
        return dataclasses.replace(self, hu=hu, tags={**self.tags, **tags}, positions=self.positions.copy())

    def resample_regular(self, spacing_z: float | None = None, *, order: int = 1, fill: float = -1024.0) -> Volume:
        """This volume on a regular grid (the slices' row/column axes and their normal), explicitly resampled.

        Tilted slices are de-sheared (each plane shifted to where the scanner put it) and gaps are
        interpolated across; the grid covers every source voxel. ``tags['resampled']`` records what was
        done. A regular volume comes back unchanged (a copy).

        Args:
            spacing_z: slice spacing of the grid (default ``spacing[0]``).
            order: interpolation order (1 linear for HU, 0 nearest for masks).
            fill: value outside the source slab.
        """
        from scipy.ndimage import map_coordinates

        spacing_z = float(spacing_z or self.spacing[0])
        if self.is_regular and math.isclose(spacing_z, self.spacing[0]):
            return dataclasses.replace(self, hu=self.hu.copy(), tags=dict(self.tags), positions=self.positions.copy())
        nz, ny, nx = self.shape
        sz, sy, sx = spacing_z, self.spacing[1], self.spacing[2]
        rel = (self.positions - self.positions[0]) @ self.direction  # per slice: (column, row, normal) offsets
        lo = np.array([rel[:, 0].min(), rel[:, 1].min(), rel[:, 2].min()])
        hi = np.array([rel[:, 0].max() + (nx - 1) * sx, rel[:, 1].max() + (ny - 1) * sy, rel[:, 2].max()])
        size = np.floor((hi - lo) / np.array([sx, sy, sz]) + 1e-6).astype(int) + 1
        ii, jj, kk = (lo[a] + np.arange(size[a]) * (sx, sy, sz)[a] for a in range(3))
        order_n = np.argsort(rel[:, 2])
        k_of = np.interp(kk, rel[order_n, 2], order_n.astype(float), left=-1.0, right=-1.0)  # fractional slice
        shift_i = np.interp(k_of, np.arange(nz), rel[:, 0])  # in-plane offset of that (interpolated) plane
        shift_j = np.interp(k_of, np.arange(nz), rel[:, 1])
        kz = np.broadcast_to(k_of[:, None, None], (size[2], size[1], size[0]))
        yj = (jj[None, :, None] - shift_j[:, None, None]) / sy
        xi = (ii[None, None, :] - shift_i[:, None, None]) / sx
        coords = np.stack([kz, np.broadcast_to(yj, kz.shape), np.broadcast_to(xi, kz.shape)])
        coords[0][kz < 0] = -10.0  # outside the slab
        data = map_coordinates(self.hu.astype(np.float32), coords, order=order, mode="constant", cval=fill)
        origin = self.positions[0] + self.direction @ lo
        steps = np.diff(np.sort(rel[:, 2]))
        note = (f"resampled to a regular grid of {sz:g} mm slices from {nz} slices (tilt {self.tilt_degrees:.1f} "
                f"degrees, steps {steps.min() if nz > 1 else 0:.2f}-{steps.max() if nz > 1 else 0:.2f} mm)")
        return Volume(data.astype(self.hu.dtype, copy=False), (sz, sy, sx), tuple(origin), self.direction,
                      {**self.tags, "resampled": note})

    def to_sitk(self) -> Any:
        """As a ``SimpleITK.Image`` (spacing and origin in x, y, z order); only for a regular volume."""
        import SimpleITK as sitk

        if not self.is_regular:
            raise ValueError("this volume's slices are not on a regular grid (gantry tilt, gap or uneven "
                             "spacing): call resample_regular() first, explicitly")
        image = sitk.GetImageFromArray(self.hu)
        image.SetSpacing(self.spacing[::-1])
        image.SetOrigin(self.origin)
        image.SetDirection(tuple(self.direction.flatten()))
        return image

    @classmethod
    def from_sitk(cls, image: Any, tags: dict[str, Any] | None = None, dtype: Any = np.float32) -> Volume:
        """From a ``SimpleITK.Image``."""
        import SimpleITK as sitk

        return cls(
            hu=sitk.GetArrayFromImage(image).astype(dtype, copy=False),
            spacing=tuple(image.GetSpacing())[::-1],
            origin=tuple(image.GetOrigin()),
            direction=np.array(image.GetDirection()).reshape(3, 3),
            tags=dict(tags or {}),
        )
