"""Attenuation tables (xraydb, offline) and tube spectra against docs/paper.md's NIST/ICRU-46 figures."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from ctharmony.scanmodel import materials, spectra

# docs/paper.md: mass attenuation (cm^2/g) at 40 / 60 / 80 keV
PAPER_MU = {
    "water": (0.2683, 0.2059, 0.1837),
    "liver": (0.2691, 0.2049, 0.1824),
    "adipose": (0.2396, 0.1974, 0.1800),
    "cortical_bone": (0.6655, 0.3148, 0.2229),
    "iodine": (22.10, 7.58, 3.51),
}


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("material", sorted(PAPER_MU))
def test_mass_attenuation_matches_nist_within_3_percent(material, no_network):
    mu = materials.mass_attenuation(material, np.array([40.0, 60.0, 80.0]))
    np.testing.assert_allclose(mu, PAPER_MU[material], rtol=0.03)


def test_iodine_contrast_per_mg_ml_matches_paper():
    np.testing.assert_allclose(materials.iodine_hu_per_mg_ml(np.array([40.0, 60.0, 80.0])), (82, 37, 19), rtol=0.05)


def test_fat_and_water_hu():
    np.testing.assert_allclose(materials.hu_at("water", [40.0, 80.0]), 0.0, atol=1e-6)
    np.testing.assert_allclose(materials.hu_at("adipose", [40.0, 60.0, 80.0]), (-180, -120, -100), atol=12)


def test_unknown_material_is_a_clear_error():
    with pytest.raises(KeyError, match="unknown material 'unobtainium'"):
        materials.mass_attenuation("unobtainium", 60.0)


def test_tube_spectra_mean_energies_and_iodine_contrast(no_network):
    assert spectra.TUBES["low"].mean_energy_kev() == pytest.approx(44.0, abs=2.0)
    assert spectra.TUBES["high"].mean_energy_kev() == pytest.approx(98.0, abs=3.0)
    # the low-kV image has far more iodine contrast than the tin-filtered high-kV image
    assert spectra.tube_iodine_hu_per_mg_ml("low") > 3.5 * spectra.tube_iodine_hu_per_mg_ml("high")
    assert spectra.effective_energy_kev("low") < 60 < 90 < spectra.effective_energy_kev("high")
