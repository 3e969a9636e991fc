from __future__ import annotations

import numpy as np
import pytest

from ctharmony.evaluate import metrics


def test_dice_overlap_and_edge_cases():
    a = np.zeros((2, 4, 4), np.uint8)
    b = np.zeros((2, 4, 4), np.uint8)
    assert metrics.dice(a, b) == 1.0  # both empty: perfect agreement that there is no liver
    a[0, :2, :2] = 1  # 4 voxels
    assert metrics.dice(a, b) == 0.0  # one empty
    b[0, :2, :] = 1  # 8 voxels, 4 shared
    assert metrics.dice(a, b) == pytest.approx(2 * 4 / (4 + 8))
    assert metrics.dice(a * 255, b.astype(bool)) == pytest.approx(2 / 3)  # any non-zero is foreground
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.dice(a, b[:1])


def test_volume_and_difference():
    mask = np.zeros((3, 10, 10), np.uint8)
    mask[:, :5, :4] = 1  # 60 voxels of 2 x 0.5 x 0.5 = 0.5 mm³
    assert metrics.liver_volume_ml(mask, (2.0, 0.5, 0.5)) == pytest.approx(60 * 0.5 / 1000)
    assert metrics.volume_difference(90.0, 100.0) == pytest.approx((-10.0, -10.0))
    diff, ratio = metrics.volume_difference(5.0, 0.0)
    assert diff == 5.0 and np.isnan(ratio)


def test_load_mask_reads_contract_and_names_bad_file(tmp_path):
    path = tmp_path / "m.npz"
    np.savez_compressed(path, mask=np.ones((2, 3, 4), np.uint8), spacing=np.array([3.0, 1.0, 1.0]))
    loaded = metrics.load_mask(path)
    assert loaded.mask.shape == (2, 3, 4) and loaded.spacing == (3.0, 1.0, 1.0)
    assert loaded.volume_ml == pytest.approx(24 * 3 / 1000) and loaded.origin is None
    bad = tmp_path / "bad.npz"
    np.savez_compressed(bad, other=np.ones(3))
    with pytest.raises(metrics.MaskFileError, match="bad.npz"):
        metrics.load_mask(bad)
    with pytest.raises(metrics.MaskFileError, match="missing.npz"):
        metrics.load_mask(tmp_path / "missing.npz")


def test_truth_resampled_in_physical_space(tmp_path, kit):
    """A y-flipped true mask lines up only when compared in physical space."""
    import SimpleITK as sitk

    cohort = kit.make_cohort(tmp_path, with_dicom=False)
    truth = cohort.truth / f"{cohort.study_uids[0]}.nii.gz"
    expected = kit.box(kit.HEIGHTS[0], kit.TRUTH_EXTRA_ROWS)
    raw = sitk.GetArrayFromImage(sitk.ReadImage(str(truth)))
    assert metrics.dice(raw, expected) < 0.9  # as stored, the rows are flipped
    aligned = metrics.truth_on_grid(truth, kit.SHAPE, kit.SPACING, kit.ORIGIN, np.eye(3))
    assert np.array_equal(aligned, expected)
    with pytest.raises(metrics.MaskFileError, match="origin/direction are unknown"):
        metrics.truth_on_grid(truth, (4, 12, 11), kit.SPACING)


def test_archive_geometry_of_a_series_written_by_simpleitk(tmp_path, kit):
    from ctharmony.archive.reader import read_geometry

    kit.write_dicom_series(tmp_path / "s", np.zeros(kit.SHAPE), "1.2.3", "1.2.3.4")
    positions, direction = read_geometry(sorted((tmp_path / "s").glob("*.dcm"))[::-1])
    assert np.allclose(positions[0], kit.ORIGIN) and np.allclose(direction, np.eye(3))
    assert np.allclose(np.diff(positions[:, 2]), kit.SPACING[0]) and len(positions) == kit.SHAPE[0]


def test_real_mask_on_real_series_grid(real_data):
    """The real TotalSegmentator mask (y flipped vs the DICOM) lands on the series grid voxel for voxel."""
    import SimpleITK as sitk

    from ctharmony.archive.reader import read_geometry

    series = real_data / "siemens-abdomen-ct"
    positions, direction = read_geometry(sorted(p for p in series.iterdir() if p.is_file()))
    origin, slices = positions[0], len(positions)
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(series))  # SimpleITK's own slice order
    first, second = (sitk.ImageFileReader() for _ in range(2))
    for reader, file in ((first, files[0]), (second, files[1])):
        reader.SetFileName(file)
        reader.ReadImageInformation()  # headers only
    assert slices == len(files) == 20
    assert np.allclose(origin, first.GetOrigin(), atol=1e-3)
    assert np.allclose(direction.ravel(), first.GetDirection(), atol=1e-6)
    size = first.GetSize()
    shape = (slices, size[1], size[0])
    slice_step = float(np.linalg.norm(np.subtract(second.GetOrigin(), first.GetOrigin())))
    spacing = (slice_step, first.GetSpacing()[1], first.GetSpacing()[0])
    truth = real_data / "siemens-abdomen-ct-liver.nii.gz"
    aligned = metrics.truth_on_grid(truth, shape, spacing, origin, direction)
    raw = sitk.GetArrayFromImage(sitk.ReadImage(str(truth))) > 0
    assert aligned.sum() == pytest.approx(366_708, rel=0.01)
    assert metrics.dice(aligned, raw) < 0.9  # the raw arrays disagree: the flip is real
    assert metrics.dice(aligned[:, ::-1, :], raw) > 0.99
