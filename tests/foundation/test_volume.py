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
