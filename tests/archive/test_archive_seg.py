"""write_seg / read_seg: DICOM SEG with highdicom, validated, Dice 1.0 on the real liver mask."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pytest
import SimpleITK as sitk

from ctharmony.archive.derived_writer import write_derived_series
from ctharmony.archive.reader import read_series
from ctharmony.archive.seg import read_seg, write_seg
from testkit.synthetic_ct import write_ct_series


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return 2.0 * float(np.logical_and(a, b).sum()) / float(a.sum() + b.sum())


def test_real_liver_mask_round_trip_dice_one(real_data, real_volume, tmp_path, validate_dicom):
    nifti = sitk.ReadImage(str(real_data / "siemens-abdomen-ct-liver.nii.gz"))
    grid = real_volume.to_sitk()
    assert not np.allclose(nifti.GetDirection(), grid.GetDirection())  # the y flip: compare in physical space
    on_grid = sitk.Resample(nifti, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    mask = sitk.GetArrayFromImage(on_grid)
    assert int(mask.sum()) == 366708
    path = write_seg(mask, real_volume, tmp_path / "liver.seg.dcm", algorithm_name="TotalSegmentator",
                     algorithm_version="2")
    validate_dicom(path)
    seg = hd.seg.segread(path)
    assert seg.SegmentSequence[0].SegmentLabel == "Liver"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == real_volume.tags["SeriesInstanceUID"]
    back = read_seg(path, real_volume)
    assert dice(back, mask) == 1.0
    # and back in the NIfTI's own (y-flipped) grid, against the original mask as stored
    back_image = sitk.GetImageFromArray(back)
    back_image.CopyInformation(grid)
    on_nifti = sitk.Resample(back_image, nifti, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    assert dice(sitk.GetArrayFromImage(on_nifti), sitk.GetArrayFromImage(nifti)) == 1.0
    # SimpleITK (GDCM) reads the SEG too, with a geometry that lands on the same voxels
    assert dice(_sitk_seg_on(path, grid), mask) == 1.0


def _sitk_seg_on(path, grid: sitk.Image) -> np.ndarray:
    """The SEG as read by SimpleITK, resampled (nearest) onto ``grid`` in physical space."""
    image = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(sitk.Resample(image, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0))


def test_seg_on_derived_series_validates(tmp_path, validate_dicom):
    volume = read_series(write_ct_series(tmp_path / "src", slices=3, rows=16, columns=16))
    derived = read_series(write_derived_series(volume, tmp_path / "h", model_name="m", model_version="1"))
    mask = (np.random.default_rng(0).random(derived.shape) > 0.7).astype(np.uint8)
    mask[1] = 0  # an empty slice must survive the round trip too
    path = write_seg(mask, derived, tmp_path / "m.seg.dcm", algorithm_name="unet", algorithm_version="1")
    validate_dicom(path)
    assert np.array_equal(read_seg(path, derived), mask)
    assert np.array_equal(_sitk_seg_on(path, derived.to_sitk()) > 0, mask > 0)
    with pytest.raises(ValueError, match="differs from the source"):
        write_seg(mask[:2], derived, tmp_path / "x.dcm", algorithm_name="u", algorithm_version="1")
