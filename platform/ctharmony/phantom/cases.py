"""Opt-in scan geometries of the phantom archive: what real archives send besides regular axial stacks.

- ``tilt``: every study at ``site-tilt`` (added by ``GeometryCases(tilt_site=True)``) is scanned with the
  site's gantry tilt: a sheared stack (see :func:`ctharmony.scanmodel.grid.tilted`);
- ``gap``: ``gap_studies`` studies miss :data:`GAP_SLICES` slices after their middle slice;
- ``variable_spacing``: ``variable_spacing_studies`` studies have uneven table steps (0.6-1.4 x nominal).

Gaps and uneven spacing go to the first studies at untilted sites, in patient order (gaps first). The
six series of a study are reconstructions of one scan, so they share its geometry and its true mask.
With no case asked for, the archive is the regular one, byte for byte.

Example:
    >>> GeometryCases(gap_studies=1).assign(3, [False, False])
    ['gap', 'regular', 'regular']
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ctharmony.scanmodel.grid import Grid, tilted, uneven, with_gap
from ctharmony.scanmodel.sites import ImageSite, TiltedSite

GAP_SLICES = 2
CASES = ("regular", "tilt", "gap", "variable_spacing")


@dataclasses.dataclass(frozen=True)
class GeometryCases:
    """Which geometry cases a phantom archive holds (all off by default)."""

    tilt_site: bool = False
    gap_studies: int = 0
    variable_spacing_studies: int = 0

    def __post_init__(self) -> None:
        for name in ("gap_studies", "variable_spacing_studies"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"GeometryCases: {name} must be >= 0, got {getattr(self, name)}")

    @property
    def any(self) -> bool:
        return self.tilt_site or self.gap_studies > 0 or self.variable_spacing_studies > 0

    def assign(self, patients: int, tilted_sites: list[bool]) -> list[str]:
        """The case of each patient; patient ``i`` is at site ``i % len(tilted_sites)``."""
        cases = ["tilt" if tilted_sites[i % len(tilted_sites)] else "regular" for i in range(patients)]
        free = [i for i, case in enumerate(cases) if case == "regular"]
        wanted = ["gap"] * self.gap_studies + ["variable_spacing"] * self.variable_spacing_studies
        if len(wanted) > len(free):
            raise ValueError(f"GeometryCases: {len(wanted)} gap / variable-spacing studies asked for, but only "
                             f"{len(free)} of {patients} patients are at untilted sites")
        for i, case in zip(free, wanted, strict=False):
            cases[i] = case
        return cases


def case_grid(grid: Grid, case: str, site: ImageSite, rng: np.random.Generator) -> Grid:
    """The scan grid of ``case`` made from a patient's regular ``grid``."""
    if case == "regular":
        return grid
    if case == "tilt":
        if not isinstance(site, TiltedSite):
            raise ValueError(f"case 'tilt' needs a TiltedSite, got site {site.name}")
        return tilted(grid, site.gantry_tilt_deg)
    if case == "gap":
        return with_gap(grid, GAP_SLICES)
    if case == "variable_spacing":
        return uneven(grid, rng)
    raise ValueError(f"unknown geometry case {case!r} (known: {', '.join(CASES)})")
