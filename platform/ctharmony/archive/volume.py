"""The ``Volume`` contract: HU voxels plus the geometry and identity of the series they came from.

Geometry follows DICOM's patient coordinate system (LPS) and SimpleITK's conventions, so a Volume
converts to and from ``SimpleITK.Image`` without loss:

- ``hu``: float32 array indexed ``(z, y, x)`` = (slice, row, column);
- ``spacing``: ``(z, y, x)`` in mm, the slice spacing derived from positions, not SliceThickness;
- ``origin``: LPS position ``(x, y, z)`` in mm of voxel ``(0, 0, 0)`` (ImagePositionPatient of slice 0);
- ``direction``: 3 x 3 matrix whose columns are the LPS unit vectors of the column (i), row (j)
  and slice (k) index axes (SimpleITK's direction, row-major when flattened);
- ``tags``: identifying tags of the source series (StudyInstanceUID, SeriesInstanceUID,
  FrameOfReferenceUID, SOPInstanceUIDs, ...). Patient keys here are pseudonymous.

Example:
    >>> import numpy as np
    >>> vol = Volume(np.zeros((2, 3, 4), np.float32), spacing=(2.0, 0.5, 0.5))
    >>> vol.shape, vol.index_to_physical((1, 0, 0)).tolist()
    ((2, 3, 4), [0.0, 0.0, 2.0])
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass
class Volume:
    """A CT volume in HU with its LPS geometry and source-series tags."""

    hu: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = dataclasses.field(default_factory=lambda: np.eye(3))
    tags: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.hu = np.asarray(self.hu)
        if self.hu.ndim != 3:
            raise ValueError(f"Volume.hu must be 3-D (z, y, x), got shape {self.hu.shape}")
        self.spacing = tuple(float(s) for s in self.spacing)  # type: ignore[assignment]
        self.origin = tuple(float(o) for o in self.origin)  # type: ignore[assignment]
        self.direction = np.asarray(self.direction, dtype=np.float64).reshape(3, 3)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.hu.shape)  # type: ignore[return-value]

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres."""
        return float(np.prod(self.spacing)) / 1000.0

    def index_to_physical(self, zyx: Any) -> np.ndarray:
        """LPS position (x, y, z) in mm of a voxel index given as (z, y, x)."""
        k, j, i = (float(v) for v in zyx)
        steps = np.array([i * self.spacing[2], j * self.spacing[1], k * self.spacing[0]])
        return np.asarray(self.origin) + self.direction @ steps

    def with_hu(self, hu: np.ndarray, **tags: Any) -> Volume:
        """A new Volume with other voxels (same shape) and the same geometry; ``tags`` are merged."""
        if hu.shape != self.hu.shape:
            raise ValueError(f"shape {hu.shape} differs from the volume's {self.hu.shape}")
        return dataclasses.replace(self, hu=hu, tags={**self.tags, **tags})

    def to_sitk(self) -> Any:
        """As a ``SimpleITK.Image`` (spacing and origin in x, y, z order)."""
        import SimpleITK as sitk

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
