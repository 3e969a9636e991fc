"""Basis materials of the simulation: every voxel is water + cortical bone + iodine (mg/mL).

Attenuation below the K-edges of the body's heavier elements spans a two-dimensional space
(photo-electric effect and Compton scattering), so each ICRU-46 tissue of :mod:`ctharmony.phantom.materials`
is a least-squares combination of water and cortical bone (within 1.5 % over 20-150 keV; fat is water
with a negative bone fraction). Iodine, with its K-edge at 33 keV, is a third basis. A slice is thus
three maps, projected once; every spectrum combines the three line integrals.

Example:
    >>> w, b = tissue_basis("liver")
    >>> 1.0 < w < 1.1 and abs(b) < 0.05
    True
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from ctharmony.phantom import materials as icru
from ctharmony.phantom.tissues import TISSUES

BASIS = ("water", "bone", "iodine")
_FIT_KEV = np.arange(20.0, 151.0, 1.0)


def basis_attenuation(energies_kev: np.ndarray) -> np.ndarray:
    """(3, E) linear attenuation (1/cm) of water, cortical bone (ICRU-46 densities) and 1 mg/mL iodine."""
    e = np.asarray(energies_kev, np.float64)
    return np.stack([icru.linear_attenuation("water", e), icru.linear_attenuation("cortical_bone", e),
                     1e-3 * icru.mass_attenuation("iodine", e)])


@functools.cache
def tissue_basis(material: str) -> tuple[float, float]:
    """(water, bone) fractions whose attenuation best matches ``material`` (ICRU-46) over 20-150 keV."""
    mu = icru.linear_attenuation(material, _FIT_KEV)
    a = basis_attenuation(_FIT_KEV)[:2].T
    weights = 1.0 / mu  # relative error
    coef, *_ = np.linalg.lstsq(a * weights[:, None], mu * weights, rcond=None)
    return float(coef[0]), float(coef[1])


@functools.cache
def label_basis() -> np.ndarray:
    """(labels, 2) water and bone fractions of the phantom's tissue labels."""
    return np.asarray([tissue_basis(t.material) for t in TISSUES], np.float32)


@dataclasses.dataclass
class MaterialMaps:
    """Water and bone fractions and iodine (mg/mL) of one or more slices, (z, y, x) or (y, x), on a square grid.

    ``liver`` is the true liver mask (optional), ``pixel_mm`` the in-plane spacing.
    """

    water: np.ndarray
    bone: np.ndarray
    iodine: np.ndarray
    pixel_mm: float
    liver: np.ndarray | None = None

    def stack(self) -> np.ndarray:
        """(3, ...) float32: the maps in :data:`BASIS` order."""
        return np.stack([self.water, self.bone, self.iodine]).astype(np.float32)

    def mono_hu(self, kev: float) -> np.ndarray:
        """Noise-free, unblurred CT numbers at a monochromatic energy (the truth images T40 / T60 / T80)."""
        mu = basis_attenuation(np.asarray([kev]))[:, 0]
        total = mu[0] * self.water + mu[1] * self.bone + mu[2] * self.iodine
        return (1000.0 * (total - mu[0]) / mu[0]).astype(np.float32)
