"""Forward model: water is flat after the beam-hardening correction, bone is not; noise follows the dose."""

import numpy as np
import pytest

from ctharmony.scanmodel.kernels import Kernel
from ctharmony.scanmodel.spectra import Beam
from ctharmony.simulate.forward import Exposure, measure
from ctharmony.simulate.projector import Geometry, make_projector
from ctharmony.simulate.recon import fbp

SIZE, PIXEL = 96, 3.5  # a 34 cm field


def _scan(maps: np.ndarray, mas: float | None, seed: int = 0) -> np.ndarray:
    proj = make_projector("svmbir", Geometry(SIZE, 144))
    lines = proj.forward(maps) * (PIXEL / 10)
    exposure = Exposure(Beam(120.0), mas=mas or 100.0, views=144, bin_area_mm2=PIXEL * 3.0)
    sino = measure(lines, exposure, None if mas is None else np.random.default_rng(seed))
    return fbp(proj, sino[None], [Kernel("B", 0.3)], PIXEL)[0]


def _water_cylinder(bone: bool = False) -> np.ndarray:
    yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2.0
    r = np.hypot(yy, xx)
    water = (r < 40).astype(np.float32)
    bones = np.zeros_like(water)
    if bone:
        for cx in (-18, 18):
            spot = np.hypot(yy, xx - cx) < 5
            water[spot], bones[spot] = 0.0, 1.0
    return np.stack([water, bones, np.zeros_like(water)])


def test_water_has_no_cupping_after_correction():
    hu = _scan(_water_cylinder(), None)
    yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2.0
    r = np.hypot(yy, xx)
    centre, rim = float(hu[r < 6].mean()), float(hu[(r > 30) & (r < 34)].mean())
    assert abs(centre) < 5 and abs(rim) < 5


def test_bone_hardens_the_beam_between_the_bones():
    hu = _scan(_water_cylinder(bone=True), None)
    yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2.0
    between = (np.abs(yy) < 2) & (np.abs(xx) < 6)
    aside = (np.abs(yy - 20) < 2) & (np.abs(xx) < 6)
    assert float(hu[between].mean()) < float(hu[aside].mean()) - 3  # the dark band of beam hardening


def test_noise_scales_with_the_inverse_root_of_the_dose():
    maps = _water_cylinder()
    clean = _scan(maps, None)
    yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2.0
    roi = np.hypot(yy, xx) < 20
    sd = {mas: float((_scan(maps, mas, seed=1) - clean)[roi].std()) for mas in (50.0, 200.0)}
    assert sd[50.0] / sd[200.0] == pytest.approx(2.0, rel=0.15)
