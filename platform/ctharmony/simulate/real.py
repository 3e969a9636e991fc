"""A real CT series and its liver mask as the anatomy of simulated patients (``simulate --anatomy real``).

:func:`load_real` reads the series with ctharmony's own reader (any transfer syntax it decodes, JPEG 2000
included), puts the liver mask on the image grid in physical space (nearest neighbour, so a mask whose
direction differs from the series', e.g. a flipped y axis, still lands on its voxels), keeps the central
``slices`` slices and the :func:`~ctharmony.simulate.maps.trunk` only (air elsewhere). No tag of the
source is kept: simulated studies get their own identifiers.

:func:`real_grid` is the simulated scan's grid: the source's slice positions and step along z, a site's
matrix ``size`` in-plane, centred on the trunk (for ``body_scale`` 1 every pixel lies where its anatomy
lay in the source) with the site's field of view, widened when the trunk would not fit the reconstruction
circle.

Example (tests/simulate/test_simulate_real_archive.py runs it on the real test series)::

    source = load_real(Path("real/siemens-abdomen-ct"), Path("real/siemens-abdomen-ct-liver.nii.gz"), slices=16)
    grid = real_grid(source, load_site("siemens-force"), size=128)
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from ctharmony.scanmodel.grid import Grid
from ctharmony.scanmodel.sites import ProjectionSite
from ctharmony.simulate.maps import body_frame, trunk

MARGIN_MM = 30.0  # room around the trunk in the field of view (skin, elastic warp)


@dataclasses.dataclass(frozen=True)
class RealSource:
    """The central slices of a real series: HU (trunk only), liver mask on its grid, geometry; no patient tags."""

    hu: np.ndarray  # (z, y, x) float32 HU, air outside the trunk
    liver: np.ndarray  # (z, y, x) uint8
    positions: np.ndarray  # (z, 3) LPS mm of each slice
    pixel_mm: float
    step_mm: float  # between slices
    centre_px: tuple[float, float]  # trunk centre (row, column)
    radius_mm: float  # farthest trunk pixel from the centre

    def liver_volume_ml(self) -> float:
        """Volume of the liver mask over these slices (slice step x pixel area)."""
        return float(self.liver.sum()) * self.step_mm * self.pixel_mm**2 / 1000.0


def load_real(series: Path, mask: Path, slices: int | None = None) -> RealSource:
    """The central ``slices`` (all when None or more than there are) of an axial series and its liver mask.

    Raises:
        ValueError: naming the folder or file: unreadable, not axial, unevenly spaced, or no liver in the slices.
    """
    from ctharmony.archive.reader import read_series
    from ctharmony.evaluate.metrics import truth_on_grid

    series, mask = Path(series), Path(mask)
    if not series.is_dir():
        raise ValueError(f"real series {series}: not a folder of DICOM files")
    if not mask.is_file():
        raise ValueError(f"real liver mask {mask}: no such file")
    files = sorted(p for p in series.iterdir() if p.is_file())
    if not files:
        raise ValueError(f"real series {series}: the folder holds no file")
    try:
        volume = read_series(files)
    except (OSError, RuntimeError, ValueError) as err:
        raise ValueError(f"real series {series}: cannot read it: {err}") from err
    axial = np.allclose(volume.direction[:, :2], [[1, 0], [0, 1], [0, 0]], atol=1e-3)
    if not axial or not volume.is_regular or volume.spacing[1] != volume.spacing[2]:
        raise ValueError(f"real series {series}: need axial slices (rows along +x, columns along +y), evenly "
                         f"spaced, square pixels; got direction {volume.direction.round(3).tolist()}, spacing "
                         f"{volume.spacing}, regular={volume.is_regular}")
    liver = truth_on_grid(mask, volume.shape, volume.spacing, volume.origin, volume.direction)
    count = volume.shape[0] if slices is None else max(1, min(int(slices), volume.shape[0]))
    start = (volume.shape[0] - count) // 2
    pick = slice(start, start + count)
    hu = np.asarray(volume.hu[pick], np.float32)
    body = trunk(hu, volume.spacing[1])
    liver = (liver[pick] > 0) & body
    if not liver.any():
        raise ValueError(f"real liver mask {mask}: no liver voxel in the central {count} slices of {series}")
    centre, radius = body_frame(body, volume.spacing[1])
    return RealSource(hu=np.where(body, hu, np.float32(-1000.0)), liver=liver.astype(np.uint8),
                      positions=volume.positions[pick].copy(), pixel_mm=volume.spacing[1],
                      step_mm=volume.spacing[0], centre_px=centre, radius_mm=radius)


def real_grid(source: RealSource, site: ProjectionSite, size: int, body_scale: float = 1.0) -> Grid:
    """The simulated grid: the source's slice positions, ``size`` x ``size`` pixels centred on the trunk.

    The field of view is the site's, widened (to whole cm) when the scaled trunk plus :data:`MARGIN_MM`
    would not fit the inscribed reconstruction circle; the pixel is rounded to what DICOM stores exactly.
    """
    needed = 2.0 * source.radius_mm * body_scale + MARGIN_MM
    fov = 10.0 * math.ceil(max(site.fov_mm, needed) / 10.0)
    pixel = round(fov / size, 4)
    first = source.positions[0]
    half = (size - 1) / 2.0 * pixel
    origin = (round(float(first[0]) + source.centre_px[1] * source.pixel_mm - half, 4),
              round(float(first[1]) + source.centre_px[0] * source.pixel_mm - half, 4), round(float(first[2]), 4))
    return Grid(shape=(len(source.hu), size, size), spacing=(round(source.step_mm, 4), pixel, pixel), origin=origin)
