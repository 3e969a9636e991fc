"""From basis line integrals to the log sinogram a scanner reconstructs: polychromatic, noisy, corrected.

For a beam with photons ``N0(E)`` per ray (spectrum x mAs per view x detector-bin area x efficiency),
an energy-integrating detector measures ``S = sum_E N0(E) E exp(-sum_k L_k mu_k(E))`` (``L_k``: the
basis line integrals in cm, ``mu_k``: :func:`~ctharmony.scanmodel.materials.basis_attenuation`). Quantum
noise is compound Poisson: ``S`` is drawn as Poisson counts of ``S^2 / V`` effective quanta of ``V / S``
keV each (``V = sum N0 E^2 exp(...)``), plus Gaussian electronic noise. A simulated ray (a coarse
bin over a coarse view) stands for ``readings_per_ray`` readings of the real detector, each with its
own electronic noise, so that noise adds over them: at low dose the most attenuated rays (lateral,
through the spine) become electronic-noise limited and streak, as on a scanner. Detector and focal-spot blur
act on the expected signal along the channels. The log signal is linearised by the water
beam-hardening correction (the water path giving that log signal), so water is flat and bone still
hardens the beam (streaks), as on a scanner.

Example:
    >>> beam = Beam(120.0)
    >>> table = water_table(beam)
    >>> bool(np.all(np.diff(table[1]) > 0))
    True
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from scipy import ndimage

from ctharmony.scanmodel.materials import basis_attenuation
from ctharmony.scanmodel.spectra import Beam

WATER_TABLE_CM = np.linspace(0.0, 80.0, 401)


@dataclasses.dataclass(frozen=True)
class Exposure:
    """How one sinogram is acquired: beam, mAs per rotation, views, bin area (mm^2) and detector properties."""

    beam: Beam
    mas: float
    views: int
    bin_area_mm2: float
    efficiency: float = 0.9
    electronic_noise: float = 2.0  # SD per detector reading, in photons of the beam's mean energy
    blur_channels: float = 0.0
    readings_per_ray: float = 1.0  # real detector readings (elements x views) summed into one simulated ray

    def photons(self) -> tuple[np.ndarray, np.ndarray]:
        """(energies, photons per ray per energy bin reaching the detector without an object)."""
        energies, fluence = self.beam.spectrum()
        return energies, fluence * (self.mas / self.views) * self.bin_area_mm2 * self.efficiency


@functools.cache
def _attenuation(beam: Beam) -> np.ndarray:
    return basis_attenuation(beam.spectrum()[0]).astype(np.float32)


@functools.cache
def water_table(beam: Beam) -> tuple[np.ndarray, np.ndarray]:
    """(water path cm, noise-free log signal) of ``beam``: the water beam-hardening calibration."""
    energies, n = beam.spectrum()
    w = n * energies
    mu = basis_attenuation(energies)[0]
    signal = np.exp(-np.outer(WATER_TABLE_CM, mu)) @ w
    return WATER_TABLE_CM, -np.log(signal / w.sum())


def expected_signal(line_integrals: np.ndarray, exposure: Exposure, chunk: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Mean detector signal S (keV) and its quantum variance V (keV^2), same shape as one basis sinogram."""
    energies, n0 = exposure.photons()
    mu = _attenuation(exposure.beam)  # (3, E)
    lin = np.asarray(line_integrals, np.float32)
    s = np.empty(lin.shape[1:], np.float64)
    v = np.empty(lin.shape[1:], np.float64)
    w1, w2 = (n0 * energies).astype(np.float32), (n0 * energies**2).astype(np.float32)
    for a in range(0, lin.shape[1], chunk):
        block = lin[:, a:a + chunk]  # (3, views, channels)
        t = np.exp(-np.tensordot(mu.T, block, axes=(1, 0)))  # (E, v, c)
        s[a:a + chunk] = np.tensordot(w1, t, axes=(0, 0))
        v[a:a + chunk] = np.tensordot(w2, t, axes=(0, 0))
    return s, v


def measure(line_integrals: np.ndarray, exposure: Exposure, rng: np.random.Generator | None) -> np.ndarray:
    """The water-corrected log sinogram (cm of water) of one acquisition; ``rng=None``: noise-free."""
    s, v = expected_signal(line_integrals, exposure)
    if exposure.blur_channels > 0:
        s = ndimage.gaussian_filter1d(s, exposure.blur_channels, axis=-1, mode="nearest")
        v = ndimage.gaussian_filter1d(v, exposure.blur_channels, axis=-1, mode="nearest")
    energies, n0 = exposure.photons()
    air = float((n0 * energies).sum())
    if rng is not None:
        quantum = v / np.maximum(s, 1e-12)
        s = rng.poisson(s / quantum) * quantum
        mean_e = air / float(n0.sum())
        sd = exposure.electronic_noise * np.sqrt(exposure.readings_per_ray) * mean_e  # independent per reading
        s = s + rng.normal(0.0, sd, s.shape)
        s = np.maximum(s, 0.5 * mean_e)  # the scanner's floor for photon-starved rays
    log = -np.log(s / air)
    path, table = water_table(exposure.beam)
    return np.interp(log, table, path).astype(np.float32)
