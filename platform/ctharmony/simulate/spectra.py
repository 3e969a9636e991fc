"""X-ray tube spectra from spekpy: peak voltage, anode angle and filtration (Al, Cu, Sn ...).

A :class:`Beam` is what leaves the tube towards the isocentre: photons per keV per mm^2 per mAs at
``distance_cm`` (the source-isocentre distance), on spekpy's energy grid. Spectra are computed once per
beam and cached (spekpy takes about half a second).

Example:
    >>> beam = Beam(kvp=120.0, filters=(("Al", 6.0),))
    >>> energies, fluence = beam.spectrum()
    >>> bool(55 < beam.mean_energy_kev() < 70 and energies.max() < 120)
    True
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

FILTER_MATERIALS = ("Al", "Cu", "Sn", "Ti", "Be", "Ag", "Mo", "Au")


@dataclasses.dataclass(frozen=True)
class Beam:
    """Tube voltage (kVp), filtration ``((element, mm), ...)``, anode angle (deg) and source-isocentre distance."""

    kvp: float
    filters: tuple[tuple[str, float], ...] = (("Al", 6.0),)
    anode_angle_deg: float = 12.0
    distance_cm: float = 60.0

    def __post_init__(self) -> None:
        if not 40.0 <= self.kvp <= 150.0:
            raise ValueError(f"Beam: kVp must be within 40-150, got {self.kvp}")
        for element, mm in self.filters:
            if element not in FILTER_MATERIALS or mm < 0:
                raise ValueError(f"Beam: filter ({element!r}, {mm}) must be one of {FILTER_MATERIALS} and >= 0 mm")

    @property
    def label(self) -> str:
        """``Sn150`` for a tin-filtered 150 kVp beam, ``120`` otherwise (the kVp as scanners print it)."""
        tin = any(e == "Sn" and mm > 0 for e, mm in self.filters)
        return f"{'Sn' if tin else ''}{self.kvp:g}"

    def spectrum(self) -> tuple[np.ndarray, np.ndarray]:
        """(energies keV, photons per keV-bin per mm^2 per mAs at the isocentre); bins of 1 keV."""
        return _spectrum(self)

    def mean_energy_kev(self) -> float:
        e, n = self.spectrum()
        return float((e * n).sum() / n.sum())


@functools.cache
def _spectrum(beam: Beam) -> tuple[np.ndarray, np.ndarray]:
    import spekpy

    spek = spekpy.Spek(kvp=beam.kvp, th=beam.anode_angle_deg, dk=1.0, z=beam.distance_cm)
    for element, mm in beam.filters:
        if mm > 0:
            spek.filter(element, mm)
    energies, fluence = spek.get_spectrum(flu=True)  # per keV per cm^2 per mAs, 1 keV bins
    keep = (fluence > 0) & (energies >= 10.0)
    out = np.asarray(energies[keep], np.float64), np.asarray(fluence[keep], np.float64) / 100.0
    for a in out:
        a.setflags(write=False)
    return out
