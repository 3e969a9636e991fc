"""Anatomy augmentation: the elastic warp moves the material maps and the liver mask together, seeded."""

import numpy as np
import pytest

from ctharmony.evaluate.metrics import dice
from ctharmony.scanmodel.anatomy import patient_grid, sample_patient
from ctharmony.scanmodel.sites import load_site
from ctharmony.simulate.maps import Augment, displacement_field, elastic, phantom_maps


@pytest.fixture(scope="module")
def maps():
    params = sample_patient(np.random.default_rng([5, 0]))
    grid = patient_grid(params, load_site("siemens-force"), 2, 96, 0.0)
    return phantom_maps(params, grid)


def _liver_by_material(m) -> np.ndarray:
    """Pixels whose materials are the liver parenchyma's (water fraction and iodine of the mask's median)."""
    inside = m.liver.astype(bool)
    water, iodine = np.median(m.water[inside]), np.median(m.iodine[inside])
    return (np.abs(m.water - water) < 0.01) & (np.abs(m.iodine - iodine) < 0.1)


def test_displacement_field_has_the_asked_amplitude_and_smoothness():
    field = displacement_field((128, 128), 3.0, 12.0, np.random.default_rng(0))
    assert float(np.sqrt((field**2).sum(axis=0).mean())) == pytest.approx(3.0, rel=1e-4)
    assert float(np.abs(np.diff(field, axis=-1)).max()) < 0.5  # smooth: neighbours move together


def test_mask_follows_the_warped_anatomy(maps):
    warped = elastic(maps, amplitude_mm=6.0, scale_mm=30.0, seed=1)
    before = dice(maps.liver, _liver_by_material(maps))
    moved = dice(warped.liver, maps.liver)
    assert moved < 0.97  # the liver did move
    assert dice(warped.liver, _liver_by_material(warped)) == pytest.approx(before, abs=0.03)  # ... with its mask
    assert dice(warped.liver, _liver_by_material(maps)) < before - 0.02  # the old anatomy no longer fits
    assert (warped.bone > 0.5).sum() > 0.5 * (maps.bone > 0.5).sum()  # the bones are warped, not erased


def test_warp_is_seeded_and_optional(maps):
    a = elastic(maps, 4.0, seed=3)
    assert np.array_equal(a.water, elastic(maps, 4.0, seed=3).water)
    assert not np.array_equal(a.water, elastic(maps, 4.0, seed=4).water)
    assert elastic(maps, 0.0) is maps
    drawn = Augment.draw(np.random.default_rng(0))
    assert drawn.elastic_mm >= 0 and drawn == Augment.draw(np.random.default_rng(0))
