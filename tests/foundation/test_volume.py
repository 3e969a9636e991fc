from __future__ import annotations

import numpy as np
import pytest

from ctharmony.archive import Volume


def test_sitk_roundtrip_keeps_geometry():
    direction = np.array([[1, 0, 0], [0, -1, 0], [0, 0, 1]], dtype=float)
    vol = Volume(np.arange(24, dtype=np.float32).reshape(2, 3, 4), (3.0, 0.8, 0.7), (10, -5, 2), direction)
    back = Volume.from_sitk(vol.to_sitk())
    np.testing.assert_array_equal(back.hu, vol.hu)
    assert back.spacing == vol.spacing and back.origin == vol.origin
    np.testing.assert_array_equal(back.direction, direction)
    # SimpleITK's own index->physical agrees with ours
    assert np.allclose(vol.to_sitk().TransformIndexToPhysicalPoint((3, 2, 1)), vol.index_to_physical((1, 2, 3)))


def test_with_hu_rejects_other_shape():
    vol = Volume(np.zeros((2, 2, 2), np.float32))
    with pytest.raises(ValueError, match="shape"):
        vol.with_hu(np.zeros((2, 2, 3), np.float32))
    assert vol.with_hu(np.ones((2, 2, 2), np.float32), model="m").tags == {"model": "m"}


def test_positions_are_kept_per_slice_and_irregular_stacks_are_flagged():
    regular = Volume(np.zeros((3, 2, 2), np.float32), (2.0, 1.0, 1.0), (5, 6, 7))
    np.testing.assert_allclose(regular.positions, [[5, 6, 7], [5, 6, 9], [5, 6, 11]])
    assert regular.is_regular and regular.tilt_degrees == 0.0
    np.testing.assert_allclose(regular.slab_thickness_mm(), [2.0, 2.0, 2.0])

    sheared = [[0, 0.5 * k, 2.0 * k] for k in range(3)]
    tilted = Volume(np.zeros((3, 2, 2), np.float32), (2.0, 1.0, 1.0), positions=sheared)
    assert not tilted.is_regular and tilted.tilt_degrees == pytest.approx(14.036, abs=1e-3)
    assert tilted.origin == (0.0, 0.0, 0.0)
    np.testing.assert_allclose(tilted.index_to_physical((2, 1, 1)), [1.0, 2.0, 4.0])
    np.testing.assert_allclose(tilted.index_to_physical((0.5, 0, 0)), [0.0, 0.25, 1.0])  # between two planes
    np.testing.assert_allclose(tilted.index_to_physical((3, 0, 0)), [0.0, 1.5, 6.0])  # one step beyond the stack
    with pytest.raises(ValueError, match="resample_regular"):
        tilted.to_sitk()
    with pytest.raises(ValueError, match="2 slice positions for 3 slices"):
        Volume(np.zeros((3, 2, 2)), positions=[[0, 0, 0], [0, 0, 1]])


def test_with_hu_keeps_every_slice_position():
    vol = Volume(np.zeros((3, 2, 2), np.float32), (2.0, 1.0, 1.0), positions=[[0, 0, 0], [0, 0, 2], [0, 0, 7]])
    again = vol.with_hu(np.ones((3, 2, 2), np.float32))
    np.testing.assert_array_equal(again.positions, vol.positions)
    assert again.volume_ml(np.ones((3, 2, 2))) == pytest.approx(4 * (2 + 3.5 + 5) / 1000)
