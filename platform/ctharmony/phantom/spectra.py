"""X-ray tube spectra of the dual-source scan (70 kVp and Sn150 kVp) and the CT numbers they give.

A spectrum is Kramers' thick-target law (photon fluence per keV proportional to (kVp - E) / E)
hardened by the tube's inherent filtration (aluminium), the tin pre-filter of the Sn150 tube and a
typical patient path of water; an energy-integrating detector weights each photon by its energy.
A tube image's CT number is the spectrum-weighted attenuation relative to water's, which makes it
linear in iodine concentration, like the scanner's calibrated image. All tables come from xraydb
(offline). The mean energies of the unhardened beams match docs/paper.md (70 kVp ~ 44 keV, Sn150 ~ 98 keV).

Example:
    >>> tube = TUBES["low"]
    >>> 40 < tube.mean_energy_kev() < 50
    True
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ctharmony.phantom import materials

ENERGIES_KEV = np.arange(15.0, 151.0, 1.0)
_DENSITY = {"Al": 2.699, "Sn": 7.31}


@dataclass(frozen=True)
class Tube:
    """One tube of the dual-source scanner: peak voltage and filtration in mm."""

    name: str
    kvp: float
    aluminium_mm: float
    tin_mm: float = 0.0
    water_path_cm: float = 15.0

    def fluence(self, hardened: bool = True) -> np.ndarray:
        """Photons per keV bin on :data:`ENERGIES_KEV` (arbitrary scale), optionally after the patient."""
        import xraydb

        e = ENERGIES_KEV
        n = np.clip(self.kvp - e, 0.0, None) / e
        for element, mm in (("Al", self.aluminium_mm), ("Sn", self.tin_mm)):
            if mm > 0:
                n = n * np.exp(-xraydb.mu_elam(element, e * 1000.0) * _DENSITY[element] * mm / 10.0)
        if hardened:
            n = n * np.exp(-materials.linear_attenuation("water", e) * self.water_path_cm)
        return n

    def mean_energy_kev(self) -> float:
        """Fluence-weighted mean energy of the beam leaving the tube (before the patient)."""
        n = self.fluence(hardened=False)
        return float((n * ENERGIES_KEV).sum() / n.sum())

    def detector_weights(self) -> np.ndarray:
        """Normalised energy-integrating detector weights of the patient-hardened beam."""
        w = self.fluence(hardened=True) * ENERGIES_KEV
        return w / w.sum()


TUBES: dict[str, Tube] = {
    "low": Tube("70 kVp", 70.0, aluminium_mm=7.5),
    "high": Tube("Sn150 kVp", 150.0, aluminium_mm=7.5, tin_mm=0.6),
}


@functools.cache
def tube_hu(tube: str, material: str) -> float:
    """CT number (HU) of a tissue without iodine in the image of ``tube`` ("low" or "high")."""
    w = TUBES[tube].detector_weights()
    mu = materials.linear_attenuation(material, ENERGIES_KEV)
    mu_w = materials.linear_attenuation("water", ENERGIES_KEV)
    return float(1000.0 * ((w * mu).sum() - (w * mu_w).sum()) / (w * mu_w).sum())


@functools.cache
def tube_iodine_hu_per_mg_ml(tube: str) -> float:
    """HU added by 1 mg/mL iodine in the image of ``tube``."""
    w = TUBES[tube].detector_weights()
    mu_i = 1e-3 * materials.mass_attenuation("iodine", ENERGIES_KEV)
    mu_w = materials.linear_attenuation("water", ENERGIES_KEV)
    return float(1000.0 * (w * mu_i).sum() / (w * mu_w).sum())


@functools.cache
def effective_energy_kev(tube: str) -> float:
    """Monochromatic energy whose iodine-to-water contrast equals the tube image's."""
    target = tube_iodine_hu_per_mg_ml(tube)
    grid = np.arange(34.0, 140.0, 0.25)
    k = materials.iodine_hu_per_mg_ml(grid)  # strictly decreasing above the K-edge (33.2 keV)
    return float(np.interp(target, k[::-1], grid[::-1]))
