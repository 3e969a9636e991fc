"""Realism of the simulated site against clinical values, measured on its own images (README table)."""

import numpy as np
import pytest

from ctharmony.phantom.anatomy import sample_patient
from ctharmony.phantom.archive import patient_grid
from ctharmony.simulate.anatomy import phantom_maps
from ctharmony.simulate.realism import measure_site
from ctharmony.simulate.scan import Scanner
from ctharmony.simulate.sites import load_site


def _adult(seed: int = 3) -> dict:
    """An adult with the average portal-venous enhancement (liver 1.5 mg/mL iodine, vessels as tabulated)."""
    rng = np.random.default_rng(seed)
    while (params := sample_patient(rng))["age_group"] != "adult":
        pass
    return {**params, "liver_iodine_mg_ml": 1.5, "vessel_iodine_scale": 1.0, "contrast": 1.0}


@pytest.mark.slow
def test_siemens_site_is_clinically_realistic():
    site = load_site("siemens-force")
    params = _adult()
    grid = patient_grid(params, site, 2, 256, 0.0)
    maps = phantom_maps(params, grid)
    f = measure_site(Scanner(site, 256, fov_mm=256 * grid.spacing[2]), maps, np.random.default_rng(0))
    assert 10.0 <= f["noise_FBP"] <= 20.0  # routine dose, standard kernel
    assert f["sharp_to_standard"] >= 2.0
    for level in site.ir.strengths:
        assert 0.25 <= f[f"ir_reduction_{level}"] <= 0.50
        assert f[f"nps_peak_IR_{level}"] <= f["nps_peak_FBP"]
        assert f[f"nps_mean_IR_{level}"] < f["nps_mean_FBP"]  # the noise power moves to lower frequencies
    assert f[f"nps_peak_IR_{max(site.ir.strengths, key=site.ir.strengths.get)}"] < f["nps_peak_FBP"]
    for kev, clinical in ((40, 190.0), (60, 110.0), (80, 80.0)):  # portal-venous liver
        assert f[f"liver_hu_M{kev}"] == pytest.approx(clinical, rel=0.10)
    assert 1.5 <= f["m40_to_m80_noise"] <= 3.0  # noise-optimised mono
    assert f["m40_to_m80_noise_plain"] > f["m40_to_m80_noise"]
