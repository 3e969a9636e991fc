"""Anatomy: organs present and disjoint, the liver coherent in 3-D, sizes from children to adults."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ctharmony.phantom.generate import liver_total_volume_ml
from ctharmony.scanmodel.anatomy import Grid, build_anatomy, sample_patient
from ctharmony.scanmodel.tissues import LABEL, LIVER_LABELS, TISSUES

COARSE = Grid(shape=(44, 64, 64), spacing=(5.0, 5.5, 5.5), origin=(-173.25, -173.25, -120.0))


@pytest.fixture(scope="module")
def patients():
    return [sample_patient(np.random.default_rng([1, i])) for i in range(16)]


def test_every_organ_is_present_and_the_liver_is_one_smooth_piece(patients):
    for params in patients[:4]:
        anatomy = build_anatomy(params, COARSE)
        present = set(np.unique(anatomy.labels).tolist())
        assert present == {t.label for t in TISSUES}, params["age_group"]
        _, pieces = ndimage.label(anatomy.liver_mask)
        assert pieces == 1
        # vessels are inside the liver: every vessel voxel touches liver parenchyma or another vessel voxel
        vessels = np.isin(anatomy.labels, (LABEL["portal_vein"], LABEL["hepatic_vein"]))
        assert vessels.any() and not (vessels & ~ndimage.binary_dilation(anatomy.liver_mask)).any()
        # one label per voxel: the liver mask holds only the liver's own labels
        assert set(np.unique(anatomy.labels[anatomy.liver_mask.astype(bool)]).tolist()) <= set(LIVER_LABELS)
        # contiguous in z: neighbouring slices' liver cross-sections overlap strongly
        areas = anatomy.liver_mask.sum(axis=(1, 2))
        for k in np.flatnonzero(areas[:-1] * areas[1:] > 50):
            both = (anatomy.liver_mask[k] & anatomy.liver_mask[k + 1]).sum()
            assert both > 0.6 * min(areas[k], areas[k + 1])


def test_liver_volumes_span_children_to_adults(patients):
    volumes = {"child": [], "adolescent": [], "adult": []}
    for params in patients:
        volumes[params["age_group"]].append(liver_total_volume_ml(params))
    every = [v for vs in volumes.values() for v in vs]
    assert min(every) >= 250 and max(every) <= 2100
    assert all(volumes.values()), "every age group is drawn"
    assert np.mean(volumes["child"]) < np.mean(volumes["adolescent"]) < np.mean(volumes["adult"])


def test_anatomy_is_deterministic_and_varies_between_patients(patients):
    grid = Grid(shape=(3, 48, 48), spacing=(3.0, 7.0, 7.0), origin=(-164.5, -164.5, -3.0))
    again = sample_patient(np.random.default_rng([1, 0]))
    assert again == patients[0]
    np.testing.assert_array_equal(build_anatomy(again, grid).labels, build_anatomy(patients[0], grid).labels)
    assert not np.array_equal(build_anatomy(patients[1], grid).labels, build_anatomy(patients[0], grid).labels)
    iodine = build_anatomy(patients[0], grid).iodine
    liver = build_anatomy(patients[0], grid).labels == LABEL["liver"]
    assert iodine[liver].std() > 0  # smooth enhancement texture, not a flat organ
    assert iodine[liver].mean() == pytest.approx(patients[0]["liver_iodine_mg_ml"], rel=0.05)
