"""Per-slice geometry end to end: tilted, gapped and unevenly spaced series keep every slice's exact plane
through reading, the derived series, the SEG and liver volumes; vendors' sparse headers write cleanly."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pydicom
import pytest

from ctharmony.archive import read_seg, read_series, write_derived_series, write_seg
from testkit.synthetic_ct import VENDOR_TAGS as VENDORS
from testkit.synthetic_ct import write_ct_series

TILT = math.radians(15.0)
TILTED = (1.0, 0.0, 0.0, 0.0, math.cos(TILT), -math.sin(TILT))  # GE-style: the image plane itself is tilted


def _positions_of(files):
    return np.array([[float(v) for v in pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient]
                     for f in files])


def _write_seg(mask, volume, path):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name.*")
        return write_seg(mask, volume, path, algorithm_name="test-seg", algorithm_version="1")


CASES = {
    "tilted": dict(orientation=TILTED, positions=[(0.0, 0.0, 2.5 * k) for k in range(6)]),  # table steps along z
    "gap": dict(positions=[(0.0, 0.0, z) for z in (0.0, 2.0, 4.0, 10.8, 12.8, 14.8)]),
    "variable": dict(positions=[(0.0, 0.0, z) for z in (0.0, 1.5, 3.5, 4.5, 7.0, 8.0)]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_derived_slice_and_seg_frame_keeps_its_source_plane(tmp_path, case):
    source = write_ct_series(tmp_path / "src", rows=12, columns=10, **CASES[case])
    volume = read_series(source)
    expected = _positions_of(volume.tags["source_files"])
    assert not volume.is_regular
    np.testing.assert_allclose(volume.positions, expected, atol=1e-6)

    derived = write_derived_series(volume.with_hu(volume.hu + 1), tmp_path / "derived", model_name="m",
                                   model_version="1")
    np.testing.assert_allclose(_positions_of(derived), expected, atol=0.01)
    for path, source_uid in zip(derived, volume.tags["SOPInstanceUIDs"], strict=True):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == source_uid
        np.testing.assert_allclose([float(v) for v in ds.ImageOrientationPatient],
                                   CASES[case].get("orientation", (1, 0, 0, 0, 1, 0)), atol=1e-6)
    back = read_series(derived)
    np.testing.assert_allclose(back.positions, volume.positions, atol=0.01)
    np.testing.assert_array_equal(back.hu, np.rint(volume.hu + 1))

    mask = np.zeros(volume.shape, np.uint8)
    mask[:, 3:8, 2:6] = 1
    seg_path = _write_seg(mask, volume, tmp_path / "seg.dcm")
    seg = pydicom.dcmread(seg_path)
    source_position = dict(zip(volume.tags["SOPInstanceUIDs"], expected.tolist(), strict=True))
    frames = seg.PerFrameFunctionalGroupsSequence
    assert len(frames) == volume.shape[0]
    for frame in frames:  # highdicom orders frames its own way: match each to its source slice
        source_uid = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        position = [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]
        np.testing.assert_allclose(position, source_position[source_uid], atol=0.01)
    np.testing.assert_array_equal(read_seg(seg_path, volume), mask)


def test_gapped_series_volume_integrates_true_plane_distances(tmp_path):
    volume = read_series(write_ct_series(tmp_path / "gap", rows=8, columns=8, **CASES["gap"]))
    assert volume.spacing[0] == pytest.approx(2.0)  # the median step, a summary only
    mask = np.ones(volume.shape, np.uint8)
    pixel_ml = 0.8 * 0.8 / 1000.0
    # slabs: 2, 2, (2+6.8)/2, (6.8+2)/2, 2, 2 mm -> the whole 14.8 mm span plus half a step at each end
    expected = 64 * pixel_ml * (14.8 + 2.0)
    assert volume.volume_ml(mask) == pytest.approx(expected)
    assert volume.volume_ml(mask) != pytest.approx(mask.sum() * volume.voxel_volume_ml)  # the old, wrong figure


def test_resample_regular_is_explicit_and_keeps_physical_content(tmp_path):
    volume = read_series(write_ct_series(tmp_path / "tilt", rows=12, columns=10, **CASES["tilted"]))
    with pytest.raises(ValueError, match="resample_regular"):
        volume.to_sitk()
    # HU linear in physical space: linear interpolation must reproduce it exactly wherever the grid is inside
    weights = np.array([3.0, -2.0, 5.0])
    points = np.array([[[volume.index_to_physical((k, j, i)) for i in range(10)] for j in range(12)]
                       for k in range(volume.shape[0])])
    linear = volume.with_hu((points @ weights).astype(np.float32))
    regular = linear.resample_regular(fill=np.nan)
    assert regular.is_regular and "tilt 15.0 degrees" in regular.tags["resampled"]
    image = regular.to_sitk()
    inside = np.isfinite(regular.hu)
    assert inside.mean() > 0.5
    for z, y, x in np.argwhere(inside)[::7]:
        expected = np.asarray(image.TransformIndexToPhysicalPoint((int(x), int(y), int(z)))) @ weights
        assert regular.hu[z, y, x] == pytest.approx(expected, abs=1e-3)
    # a regular volume comes back unchanged
    plain = read_series(write_ct_series(tmp_path / "plain", rows=6, columns=6))
    np.testing.assert_array_equal(plain.resample_regular().hu, plain.hu)




@pytest.mark.parametrize("vendor", sorted(VENDORS))
def test_sparse_vendor_headers_write_derived_series_and_seg(tmp_path, vendor):
    volume = read_series(write_ct_series(tmp_path / vendor, rows=8, columns=8, tags=VENDORS[vendor]))
    derived = write_derived_series(volume, tmp_path / "out", model_name="m", model_version="1")
    assert len(derived) == volume.shape[0]
    mask = np.zeros(volume.shape, np.uint8)
    mask[1:3, 2:5, 2:5] = 1
    np.testing.assert_array_equal(read_seg(_write_seg(mask, volume, tmp_path / "seg.dcm"), volume), mask)
