"""Canonical in-plane orientation: the 8 symmetries, exact round trips, geometry checked by SimpleITK."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from ctharmony.archive.orientation import (
    IDENTITY,
    SYMMETRIES,
    InPlaneTransform,
    OrientationError,
    canonical_transform,
    slice_plane,
    to_canonical,
    transform_volume,
)
from ctharmony.archive.volume import Volume


@pytest.fixture
def canonical_volume() -> Volume:
    """A non-square volume in the canonical layout (identity direction), with distinct voxel values."""
    hu = np.random.default_rng(0).normal(40, 100, (3, 5, 7)).astype(np.float32)
    return Volume(hu, spacing=(2.5, 0.7, 0.9), origin=(-20.0, -31.0, 105.0))


def _rotation(axis: int, degrees: float) -> np.ndarray:
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    i, j = [a for a in range(3) if a != axis]
    rot = np.eye(3)
    rot[i, i], rot[i, j], rot[j, i], rot[j, j] = c, -s, s, c
    return rot


def test_there_are_8_distinct_symmetries_and_each_round_trips_exactly(canonical_volume):
    assert len(set(SYMMETRIES)) == 8 and IDENTITY in SYMMETRIES
    hu = canonical_volume.hu
    layouts = {t.apply(hu).tobytes() + bytes(str(t.apply(hu).shape), "ascii") for t in SYMMETRIES}
    assert len(layouts) == 8  # every symmetry lays the voxels out differently
    batch = hu[:, None]  # (N, C, H, W), as the networks take slices
    for transform in SYMMETRIES:
        out = transform.apply(hu)
        assert out.dtype == hu.dtype and out.flags["C_CONTIGUOUS"]
        assert out.shape == ((3, 7, 5) if transform.transpose else hu.shape)
        np.testing.assert_array_equal(transform.invert(out), hu)
        np.testing.assert_array_equal(transform.invert(transform.apply(batch)), batch)
        np.testing.assert_array_equal(transform.apply(batch)[:, 0], out)


def test_the_8_stored_layouts_of_one_image_give_the_same_canonical_volume(canonical_volume):
    reference = canonical_volume.to_sitk()
    for stored_as in SYMMETRIES:
        stored = transform_volume(canonical_volume, stored_as)
        # independent check of the geometry: SimpleITK sees the same image in physical space
        on_reference = sitk.Resample(stored.to_sitk(), reference, sitk.Transform(), sitk.sitkNearestNeighbor)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(on_reference), canonical_volume.hu)
        transform = canonical_transform(stored.direction)
        np.testing.assert_array_equal(transform.apply(stored.hu), canonical_volume.hu)
        back = to_canonical(stored)
        np.testing.assert_array_equal(back.hu, canonical_volume.hu)
        np.testing.assert_allclose(back.direction, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(back.origin, canonical_volume.origin, atol=1e-9)
        assert back.spacing == canonical_volume.spacing
        np.testing.assert_array_equal(transform.invert(back.hu), stored.hu)


def test_the_issue_case_rotated_180_degrees_in_plane():
    transform = canonical_transform([-1, 0, 0, 0, -1, 0, 0, 0, 1])  # IOP -1,0,0,0,-1,0 as 9 row-major values
    assert transform == InPlaneTransform(transpose=False, flip_rows=True, flip_columns=True)
    slices = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(transform.apply(slices), np.rot90(slices, 2, axes=(1, 2)))
    assert canonical_transform(np.eye(3)).is_identity and canonical_transform(None) is IDENTITY


@pytest.mark.parametrize("rotation", [_rotation(2, 30), _rotation(0, 20), _rotation(2, -35) @ _rotation(0, 25)],
                         ids=["in-plane 30", "gantry tilt 20", "oblique"])
def test_tilted_and_oblique_slices_get_the_layout_of_the_nearest_axial(rotation):
    for stored_as in SYMMETRIES:
        direction = stored_as.direction(np.eye(3))
        expected = canonical_transform(direction)
        assert canonical_transform(rotation @ direction) == expected
        assert slice_plane(rotation @ direction) == "axial"
        canonical = expected.direction(rotation @ direction)
        assert canonical[0, 0] > 0.7 and canonical[1, 1] > 0.7  # columns toward Left, rows toward Posterior


def test_coronal_and_sagittal_series_go_to_their_usual_display():
    coronal = np.column_stack([[1, 0, 0], [0, 0, -1], [0, 1, 0]])  # IOP 1,0,0,0,0,-1
    sagittal = np.column_stack([[0, 1, 0], [0, 0, -1], [1, 0, 0]])  # IOP 0,1,0,0,0,-1
    assert (slice_plane(coronal), slice_plane(sagittal)) == ("coronal", "sagittal")
    for display in (coronal, sagittal):
        assert canonical_transform(display).is_identity
        for stored_as in SYMMETRIES:
            direction = stored_as.direction(display)
            np.testing.assert_allclose(canonical_transform(direction).direction(direction), display, atol=1e-12)


@pytest.mark.parametrize("direction", [np.zeros(9), [1, 0, 0, 0.5, 1, 0, 0, 0, 1], [np.nan] * 9, [1, 2, 3]])
def test_a_direction_that_is_no_slice_plane_is_refused(direction):
    with pytest.raises(OrientationError, match="orthogonal unit vectors|3 x 3"):
        canonical_transform(direction)


def test_per_slice_positions_of_a_tilted_volume_follow_the_voxels():
    """Every voxel keeps its physical position (gantry tilt: slices sheared along the column axis)."""
    hu = np.random.default_rng(1).normal(size=(4, 5, 6)).astype(np.float32)
    positions = [[-10.0 + 1.5 * k, -20.0, 30.0 + 2.0 * k] for k in range(4)]  # sheared along x
    tilted = Volume(hu, spacing=(2.0, 0.8, 0.6), direction=_rotation(2, 180) @ np.eye(3), positions=positions)
    rows, columns = np.meshgrid(np.arange(5), np.arange(6), indexing="ij")
    for transform in SYMMETRIES:
        moved = transform_volume(tilted, transform)
        source_rows, source_columns = (transform.apply(index[None])[0] for index in (rows, columns))
        for k, r, c in [(0, 0, 0), (3, 0, 0), (1, moved.shape[1] - 1, 2), (2, 1, moved.shape[2] - 1)]:
            np.testing.assert_allclose(moved.index_to_physical((k, r, c)),
                                       tilted.index_to_physical((k, source_rows[r, c], source_columns[r, c])),
                                       atol=1e-9)
            assert moved.hu[k, r, c] == tilted.hu[k, source_rows[r, c], source_columns[r, c]]
        np.testing.assert_array_equal(canonical_transform(moved.direction).apply(moved.hu),
                                      canonical_transform(tilted.direction).apply(tilted.hu))
