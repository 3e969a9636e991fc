"""write_derived_series: provenance, deterministic UIDs, round trip through pydicom, SimpleITK, read_series."""

from __future__ import annotations

import numpy as np
import pydicom
import SimpleITK as sitk

from ctharmony.archive.derived_writer import derived_description, write_derived_series
from ctharmony.archive.reader import read_series
from testkit.synthetic_ct import write_ct_series


def _source(tmp_path):
    files = write_ct_series(tmp_path / "src", slices=4, rows=16, columns=24, spacing=2.5)
    return files, read_series(files)


def test_round_trip_and_provenance(tmp_path, validate_dicom):
    files, volume = _source(tmp_path)
    harmonized = volume.with_hu(volume.hu * 0.5 + 10.3)
    paths = write_derived_series(harmonized, tmp_path / "out", model_name="ctharmony-harmonizer", model_version="3")
    assert len(paths) == 4
    for path in paths:
        validate_dicom(path)
    back = read_series(paths)
    assert np.array_equal(back.hu, np.rint(harmonized.hu))
    assert np.allclose(back.spacing, volume.spacing) and np.allclose(back.origin, volume.origin)
    assert np.allclose(back.direction, volume.direction)
    image = sitk.ReadImage([str(p) for p in paths])
    assert np.array_equal(sitk.GetArrayFromImage(image), np.rint(harmonized.hu))
    assert np.allclose(image.GetOrigin(), volume.origin, atol=1e-6)

    source, first = pydicom.dcmread(files[0]), pydicom.dcmread(paths[0])
    for keyword in ("PatientName", "PatientID", "StudyInstanceUID", "StudyDate", "FrameOfReferenceUID"):
        assert first.data_element(keyword).value == source.data_element(keyword).value, keyword
    assert first.SeriesInstanceUID != source.SeriesInstanceUID
    assert list(first.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert "ctharmony-harmonizer" in first.DerivationDescription and "3" in first.DerivationDescription
    assert first.SeriesDescription.lower().endswith("not for clinical use")
    assert first.SourceImageSequence[0].ReferencedSOPInstanceUID == volume.tags["SOPInstanceUIDs"][0]
    assert len({pydicom.dcmread(p).SOPInstanceUID for p in paths}) == 4


def test_uids_are_deterministic_per_model_version(tmp_path):
    _, volume = _source(tmp_path)
    a = write_derived_series(volume, tmp_path / "a", model_name="m", model_version="1")
    b = write_derived_series(volume, tmp_path / "b", model_name="m", model_version="1")
    c = write_derived_series(volume, tmp_path / "c", model_name="m", model_version="2")
    uid = [pydicom.dcmread(p[0]).SeriesInstanceUID for p in (a, b, c)]
    assert uid[0] == uid[1] != uid[2]
    assert pydicom.dcmread(a[1]).SOPInstanceUID == pydicom.dcmread(b[1]).SOPInstanceUID
    # the other part of a split series (same SeriesInstanceUID, other slices) gets other UIDs
    other = read_series(write_ct_series(tmp_path / "part2", slices=2, rows=16, columns=24,
                                        series_uid=volume.tags["SeriesInstanceUID"], origin=(0, 0, 99)))
    d = write_derived_series(other, tmp_path / "d", model_name="m", model_version="1")
    assert pydicom.dcmread(d[0]).SeriesInstanceUID != uid[0]


def test_description_is_bounded_and_flagged():
    text = derived_description("A" * 80, "model", "1")
    assert len(text) <= 64 and text.endswith("not for clinical use")
    assert derived_description("x", "m", "1", "Custom") == "Custom - not for clinical use"


def test_real_series_derived_with_surrogate_study(real_volume, tmp_path, validate_dicom):
    paths = write_derived_series(real_volume, tmp_path / "real", model_name="m", model_version="1")
    validate_dicom(paths[0])
    ds = pydicom.dcmread(paths[0])
    assert ds.StudyInstanceUID == real_volume.tags["StudyInstanceUID"] != ""
    assert np.array_equal(read_series(paths).hu, real_volume.hu)
