"""Tissue compositions (ICRU-46), their X-ray attenuation (offline, xraydb's Elam tables) and basis fits.

Every voxel of the phantom is one tissue plus an iodine concentration (mg/mL). Its CT number at a
photon energy E follows from the linear attenuation coefficients:

    HU(E) = 1000 * (mu_tissue(E) + c_I * mu_m,I(E) - mu_water(E)) / mu_water(E)

with ``c_I`` in g/cm^3 (1 mg/mL = 1e-3 g/cm^3).

Basis materials (the projection simulator's voxels): attenuation below the K-edges of the body's heavier
elements spans a two-dimensional space (photo-electric effect and Compton scattering), so each tissue is
a least-squares combination of water and cortical bone (:func:`tissue_basis`, within 1.5 % over 20-150 keV;
fat is water with a negative bone fraction). Iodine, with its K-edge at 33 keV, is a third basis
(:data:`BASIS`, :func:`basis_attenuation`).

Example:
    >>> round(float(hu_at("liver", 80.0)[0])), round(float(iodine_hu_per_mg_ml(40.0)[0]))
    (52, 82)
    >>> w, b = tissue_basis("liver")
    >>> 1.0 < w < 1.1 and abs(b) < 0.05
    True
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ctharmony.scanmodel.tissues import TISSUES


@dataclass(frozen=True)
class Material:
    """A tissue: elemental mass fractions (percent, normalised on use) and density in g/cm^3."""

    name: str
    density: float
    fractions: tuple[tuple[str, float], ...]


# ICRU Report 46 adult compositions (mass %). Adipose density 0.92 g/cm^3 (ICRU-46 adipose
# tissue 1-3 span 0.93-0.97; 0.92 reproduces the portal-venous fat values -180/-120/-100 HU).
MATERIALS: dict[str, Material] = {
    m.name: m
    for m in (
        Material("air", 0.0012, (("N", 75.5), ("O", 23.2), ("Ar", 1.3))),
        Material("water", 1.0, (("H", 11.19), ("O", 88.81))),
        Material("adipose", 0.92, (("H", 11.4), ("C", 59.8), ("N", 0.7), ("O", 27.8), ("Na", 0.1),
                                   ("S", 0.1), ("Cl", 0.1))),
        Material("muscle", 1.05, (("H", 10.2), ("C", 14.3), ("N", 3.4), ("O", 71.0), ("Na", 0.1),
                                  ("P", 0.2), ("S", 0.3), ("Cl", 0.1), ("K", 0.4))),
        Material("liver", 1.06, (("H", 10.2), ("C", 13.9), ("N", 3.0), ("O", 71.6), ("Na", 0.2),
                                 ("P", 0.3), ("S", 0.3), ("Cl", 0.2), ("K", 0.3))),
        Material("blood", 1.06, (("H", 10.2), ("C", 11.0), ("N", 3.3), ("O", 74.5), ("Na", 0.1),
                                 ("P", 0.1), ("S", 0.2), ("Cl", 0.3), ("K", 0.2), ("Fe", 0.1))),
        Material("spleen", 1.06, (("H", 10.3), ("C", 11.3), ("N", 3.2), ("O", 74.1), ("Na", 0.1),
                                  ("P", 0.3), ("S", 0.2), ("Cl", 0.2), ("K", 0.3))),
        Material("kidney", 1.05, (("H", 10.3), ("C", 13.2), ("N", 3.0), ("O", 72.4), ("Na", 0.2),
                                  ("P", 0.2), ("S", 0.2), ("Cl", 0.2), ("K", 0.2), ("Ca", 0.1))),
        Material("gi_tract", 1.03, (("H", 10.6), ("C", 11.5), ("N", 2.2), ("O", 75.1), ("Na", 0.1),
                                    ("P", 0.1), ("S", 0.1), ("Cl", 0.2), ("K", 0.1))),
        Material("cortical_bone", 1.92, (("H", 3.4), ("C", 15.5), ("N", 4.2), ("O", 43.5), ("Na", 0.1),
                                         ("Mg", 0.2), ("P", 10.3), ("S", 0.3), ("Ca", 22.5))),
        Material("spongiosa", 1.18, (("H", 8.5), ("C", 40.4), ("N", 2.8), ("O", 36.7), ("Na", 0.1),
                                     ("Mg", 0.1), ("P", 3.4), ("S", 0.2), ("Cl", 0.2), ("K", 0.1),
                                     ("Ca", 7.4), ("Fe", 0.1))),
    )
}


@functools.cache
def _element_mu(element: str, energies_kev: tuple[float, ...]) -> np.ndarray:
    import xraydb

    return np.asarray(xraydb.mu_elam(element, np.asarray(energies_kev) * 1000.0), dtype=np.float64)


def mass_attenuation(material: str, energies_kev: float | np.ndarray) -> np.ndarray:
    """Mass attenuation coefficient (cm^2/g) of a tissue, or of ``"iodine"``, at the given energies."""
    energies = tuple(float(e) for e in np.atleast_1d(energies_kev))
    if material == "iodine":
        return _element_mu("I", energies)
    try:
        spec = MATERIALS[material]
    except KeyError as err:
        raise KeyError(f"unknown material {material!r}; known: {', '.join(MATERIALS)}, iodine") from err
    total = sum(w for _, w in spec.fractions)
    return sum((w / total) * _element_mu(el, energies) for el, w in spec.fractions)


def linear_attenuation(material: str, energies_kev: float | np.ndarray) -> np.ndarray:
    """Linear attenuation coefficient (1/cm) of a tissue at its ICRU-46 density."""
    return mass_attenuation(material, energies_kev) * MATERIALS[material].density


def hu_at(material: str, energies_kev: float | np.ndarray, iodine_mg_ml: float = 0.0) -> np.ndarray:
    """CT number (HU) of a tissue with ``iodine_mg_ml`` of iodine at monochromatic energies (keV)."""
    mu_water = linear_attenuation("water", energies_kev)
    mu = linear_attenuation(material, energies_kev) + 1e-3 * iodine_mg_ml * mass_attenuation("iodine", energies_kev)
    return 1000.0 * (mu - mu_water) / mu_water


def iodine_hu_per_mg_ml(energies_kev: float | np.ndarray) -> np.ndarray:
    """HU added by 1 mg/mL of iodine at monochromatic energies (keV): ~82 / 37 / 19 at 40 / 60 / 80."""
    return 1000.0 * 1e-3 * mass_attenuation("iodine", energies_kev) / linear_attenuation("water", energies_kev)


BASIS = ("water", "bone", "iodine")
_FIT_KEV = np.arange(20.0, 151.0, 1.0)


def basis_attenuation(energies_kev: np.ndarray) -> np.ndarray:
    """(3, E) linear attenuation (1/cm) of water, cortical bone (ICRU-46 densities) and 1 mg/mL iodine."""
    e = np.asarray(energies_kev, np.float64)
    return np.stack([linear_attenuation("water", e), linear_attenuation("cortical_bone", e),
                     1e-3 * mass_attenuation("iodine", e)])


@functools.cache
def tissue_basis(material: str) -> tuple[float, float]:
    """(water, bone) fractions whose attenuation best matches ``material`` (ICRU-46) over 20-150 keV."""
    mu = linear_attenuation(material, _FIT_KEV)
    a = basis_attenuation(_FIT_KEV)[:2].T
    weights = 1.0 / mu  # relative error
    coef, *_ = np.linalg.lstsq(a * weights[:, None], mu * weights, rcond=None)
    return float(coef[0]), float(coef[1])


@functools.cache
def label_basis() -> np.ndarray:
    """(labels, 2) water and bone fractions of the phantom's tissue labels."""
    return np.asarray([tissue_basis(t.material) for t in TISSUES], np.float32)
