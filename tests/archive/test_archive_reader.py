"""read_series: HU, LPS geometry, transfer syntaxes, rescale, padding; equal to SimpleITK."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import JPEG2000Lossless, JPEGLosslessSV1

from ctharmony.archive.reader import PADDING_HU, SeriesReadError, read_series
from testkit.synthetic_ct import write_ct_series


def _sitk_read(files) -> sitk.Image:
    folder = str(files[0].parent)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(folder))
    return reader.Execute()


def _assert_same_as_sitk(volume, image: sitk.Image) -> None:
    assert np.array_equal(volume.hu, sitk.GetArrayFromImage(image).astype(np.float32))
    assert np.allclose(volume.spacing[::-1], image.GetSpacing(), atol=1e-6)
    assert np.allclose(volume.origin, image.GetOrigin(), atol=1e-6)
    assert np.allclose(volume.direction.flatten(), image.GetDirection(), atol=1e-6)


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2", JPEG2000Lossless, JPEGLosslessSV1])
def test_transfer_syntaxes_match_simpleitk(tmp_path, syntax):
    files = write_ct_series(tmp_path / "s", slices=4, rows=32, columns=32, transfer_syntax=syntax)
    assert pydicom.dcmread(files[0]).file_meta.TransferSyntaxUID == syntax
    volume = read_series(sorted(files, reverse=True))  # any order in, sorted along the normal out
    _assert_same_as_sitk(volume, _sitk_read(files))
    assert volume.tags["source_files"] == [str(f) for f in files]
    assert volume.tags["SOPInstanceUIDs"] == [pydicom.dcmread(f).SOPInstanceUID for f in files]
    assert volume.hu.dtype == np.float32 and volume.spacing[0] == 2.0


def test_oblique_sagittal_geometry_matches_simpleitk(tmp_path):
    c, s = np.cos(0.3), np.sin(0.3)
    orientation = (0.0, c, s, 0.0, -s, c)  # rows along y/z, columns along z/y: normal along +x
    files = write_ct_series(tmp_path / "sag", slices=3, orientation=orientation, spacing=1.5)
    volume = read_series(files)
    _assert_same_as_sitk(volume, _sitk_read(files))
    assert np.allclose(volume.index_to_physical((2, 0, 0)), np.asarray(volume.origin) + [3.0, 0, 0])


def test_rescale_and_padding(tmp_path):
    tags = {"RescaleSlope": 2, "RescaleIntercept": -1000, "PixelPaddingValue": 0}
    files = write_ct_series(tmp_path / "r", slices=2, tags=tags)
    volume = read_series(files)
    for k, path in enumerate(files):
        stored = pydicom.dcmread(path).pixel_array.astype(np.float32)
        expected = np.where(stored == 0, PADDING_HU, stored * 2 - 1000)
        assert np.array_equal(volume.hu[k], expected)


def test_errors_name_the_file(tmp_path, messy_archive):
    files = write_ct_series(tmp_path / "e", slices=3)
    junk = tmp_path / "e" / "junk.dcm"
    junk.write_text("hello", encoding="utf-8")
    with pytest.raises(SeriesReadError, match="junk.dcm: not a readable DICOM file"):
        read_series([*files, junk])
    with pytest.raises(SeriesReadError, match="share a position"):
        read_series(messy_archive["quarantine"]["duplicate_positions"])
    with pytest.raises(SeriesReadError, match="no pixel data"):
        read_series([*files, *messy_archive["quarantine"]["no_pixels"]])
    with pytest.raises(SeriesReadError, match="short.dcm: pixel data cannot be decoded"):
        read_series([*files, *messy_archive["quarantine"]["undecodable"]])
    with pytest.raises(SeriesReadError, match="no files"):
        read_series([])


def test_real_siemens_jpeg2000_equals_simpleitk(real_data, real_volume):
    files = sorted((real_data / "siemens-abdomen-ct").iterdir())
    assert pydicom.dcmread(files[0], stop_before_pixels=True).file_meta.TransferSyntaxUID == JPEG2000Lossless
    image = _sitk_read(files)
    _assert_same_as_sitk(real_volume, image)
    assert real_volume.shape == (20, 512, 512) and real_volume.spacing[0] == 2.0
    reader = sitk.ImageSeriesReader()
    assert real_volume.tags["source_files"] == list(reader.GetGDCMSeriesFileNames(str(files[0].parent)))
    # the files carry no Study/Series UID: surrogates are recorded as such
    assert set(real_volume.tags["surrogate_uids"]) == {"SeriesInstanceUID", "StudyInstanceUID"}
