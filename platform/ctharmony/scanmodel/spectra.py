"""X-ray spectra and the CT numbers they give: two tube models over the same materials.

- :class:`Tube` (the image-domain phantom's dual-source pair :data:`TUBES`, 70 kVp and Sn150 kVp): Kramers'
  thick-target law (photons per keV ~ (kVp - E) / E) hardened by aluminium, the Sn150 tube's tin and a
  typical patient path of 15 cm water, on :data:`ENERGIES_KEV`; a tube image's CT number is the
  spectrum-weighted attenuation relative to water's (:func:`tube_hu`, :func:`tube_iodine_hu_per_mg_ml`).
  Mean energies of the unhardened beams match docs/paper.md (70 kVp ~ 44 keV, Sn150 ~ 98 keV).
- :class:`Beam` (the projection-domain simulator's, set per site in YAML): spekpy's spectrum for a peak
  voltage, anode angle and filtration (Al, Cu, Sn ...), photons per keV per mm^2 per mAs at the isocentre,
  computed once per beam and cached (spekpy takes about half a second).

Both weigh each photon by its energy (energy-integrating detector) and share :func:`weighted_iodine_hu` and
:func:`energy_of_iodine_hu`. The two models are kept as they are (their numbers differ: Kramers vs spekpy,
15 vs 20 cm water), so both archives stay byte-identical to earlier versions.

Example:
    >>> 40 < TUBES["low"].mean_energy_kev() < 50
    True
    >>> beam = Beam(kvp=120.0, filters=(("Al", 6.0),))
    >>> bool(55 < beam.mean_energy_kev() < 70 and beam.spectrum()[0].max() < 120)
    True
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from ctharmony.scanmodel import materials

ENERGIES_KEV = np.arange(15.0, 151.0, 1.0)
FILTER_MATERIALS = ("Al", "Cu", "Sn", "Ti", "Be", "Ag", "Mo", "Au")
_DENSITY = {"Al": 2.699, "Sn": 7.31}


@dataclasses.dataclass(frozen=True)
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
    return weighted_iodine_hu(ENERGIES_KEV, TUBES[tube].detector_weights())


@functools.cache
def effective_energy_kev(tube: str) -> float:
    """Monochromatic energy whose iodine-to-water contrast equals the tube image's."""
    return energy_of_iodine_hu(tube_iodine_hu_per_mg_ml(tube))


def weighted_iodine_hu(energies_kev: np.ndarray, weights: np.ndarray) -> float:
    """HU added by 1 mg/mL iodine in an image whose detector weighs ``energies_kev`` by ``weights``."""
    mu_i = 1e-3 * materials.mass_attenuation("iodine", energies_kev)
    mu_w = materials.linear_attenuation("water", energies_kev)
    return float(1000.0 * (weights * mu_i).sum() / (weights * mu_w).sum())


def energy_of_iodine_hu(target: float) -> float:
    """The monochromatic energy (34-140 keV) at which 1 mg/mL iodine adds ``target`` HU."""
    grid = np.arange(34.0, 140.0, 0.25)
    k = materials.iodine_hu_per_mg_ml(grid)  # strictly decreasing above the K-edge (33.2 keV)
    return float(np.interp(target, k[::-1], grid[::-1]))

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
