"""Image formation: liver HU per protocol (docs/paper.md), noise levels, IR texture, shared noise realisation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ctharmony.evaluate import texture
from ctharmony.phantom import noise, physics
from ctharmony.scanmodel.anatomy import Anatomy, Grid, build_anatomy, patient_grid, sample_patient
from ctharmony.scanmodel.sites import make_sites
from ctharmony.scanmodel.tissues import LABEL

PAPER_LIVER_HU = {"M40": 190.0, "M60": 110.0, "M80": 80.0}
SITES = make_sites(4, seed=0)


@pytest.fixture(scope="module")
def rendered():
    """Six patients over four sites, 96 x 96 x 4, with noise-free images alongside."""
    out = []
    for i in range(6):
        params = sample_patient(np.random.default_rng([11, i]))
        site = SITES[i % len(SITES)]
        anatomy = build_anatomy(params, patient_grid(params, site, slices=4, size=96, z_shift_mm=0.0))
        out.append((anatomy, physics.render(anatomy, site, np.random.default_rng([11, i, 1]), with_clean=True)))
    return out


def _liver_roi(anatomy: Anatomy) -> np.ndarray:
    return ndimage.binary_erosion(anatomy.labels == LABEL["liver"], iterations=1)


def test_liver_hu_per_protocol_matches_paper(rendered):
    means = {p: [] for p in physics.PROTOCOLS}
    for anatomy, images in rendered:
        roi = _liver_roi(anatomy)
        assert roi.sum() > 200
        patient = {p: float(images[p][roi].mean()) for p in physics.PROTOCOLS}
        assert patient["M40"] > patient["M60"] > patient["M80"]  # always, for every patient
        for p, v in patient.items():
            means[p].append(v)
    for protocol, paper in PAPER_LIVER_HU.items():
        assert np.mean(means[protocol]) == pytest.approx(paper, rel=0.15), protocol
    # FBP / IR / OPT: mixed images between 60 and 80 keV-like, IR the same signal as FBP, OPT more contrast
    assert np.mean(means["IR"]) == pytest.approx(np.mean(means["FBP"]), abs=2.0)
    assert np.mean(means["M80"]) < np.mean(means["FBP"]) < np.mean(means["OPT"]) < np.mean(means["M40"])


def test_fat_and_portal_vein_follow_iodine_physics(rendered):
    anatomy, images = rendered[0]
    fat = ndimage.binary_erosion(anatomy.labels == LABEL["fat"], iterations=1)
    fat_hu = [float(images[f"clean_{p}"][fat].mean()) for p in ("M40", "M60", "M80")]
    assert fat_hu[0] < fat_hu[1] < fat_hu[2] < -80  # fat darkens at low keV
    liver = _liver_roi(anatomy)
    contrast = [float(images[f"clean_{p}"][liver].mean()) - f for p, f in zip(("M40", "M60", "M80"), fat_hu,
                                                                                 strict=True)]
    assert contrast[0] > 1.5 * contrast[2]  # liver-to-fat contrast rises at low energy


def _uniform_noise(site, size=128, slices=6, seed=3):
    """Noise-only images of a uniform water cylinder at ``site`` (image minus its noise-free version)."""
    pixel = site.fov_mm / size
    grid = Grid(shape=(slices, size, size), spacing=(site.slice_thickness_mm, pixel, pixel), origin=(0, 0, 0))
    water = Anatomy(np.full(grid.shape, LABEL["csf"], np.uint8), np.zeros(grid.shape, np.float32), grid)
    images = physics.render(water, site, np.random.default_rng(seed), with_clean=True)
    return {p: images[p] - images[f"clean_{p}"] for p in physics.PROTOCOLS}, pixel


@pytest.mark.parametrize("site", SITES, ids=lambda s: s.name)
def test_noise_levels_in_a_uniform_region(site):
    noise_only, _ = _uniform_noise(site)
    sd = {p: float(n.std()) for p, n in noise_only.items()}
    assert 12.0 <= sd["FBP"] <= 16.0
    assert 0.65 <= sd["IR"] / sd["FBP"] <= 0.75  # IR 25-35 % below FBP
    assert 1.5 <= sd["M40"] / sd["M60"] <= 2.5
    assert sd["M40"] == max(sd.values())  # M40 the noisiest
    assert sd["M80"] == pytest.approx(sd["M60"], rel=0.2)


def test_ir_noise_power_spectrum_peaks_lower_and_shares_the_realisation():
    noise_only, pixel = _uniform_noise(SITES[0], size=192)
    f, nps_fbp = texture.radial_nps(noise_only["FBP"], pixel, bins=24)
    _, nps_ir = texture.radial_nps(noise_only["IR"], pixel, bins=24)
    assert f[np.argmax(nps_ir)] < f[np.argmax(nps_fbp)]
    # blotchier: IR keeps its low-frequency power but loses most of the high-frequency power
    high = f > 0.6 * f.max()
    assert nps_ir[high].sum() < 0.3 * nps_fbp[high].sum()
    # one scan, one realisation: the reconstructions' noise is correlated, not independent
    corr = np.corrcoef(noise_only["FBP"].ravel(), noise_only["IR"].ravel())[0, 1]
    assert corr > 0.6
    assert np.corrcoef(noise_only["M60"].ravel(), noise_only["M80"].ravel())[0, 1] > 0.6


def test_fbp_nps_shape_is_ramp_like():
    rng = np.random.default_rng(0)
    n = noise.shaped_noise(rng, (8, 128, 128), pixel_mm=0.7, peak_lp_mm=0.3)
    f, nps = texture.radial_nps(n, 0.7, bins=24)
    assert nps[0] < 0.2 * nps.max()  # little power at DC: FBP's ramp
    assert f[np.argmax(nps)] == pytest.approx(0.3, abs=0.06)
    assert float(n.std()) == pytest.approx(1.0, rel=0.05)
