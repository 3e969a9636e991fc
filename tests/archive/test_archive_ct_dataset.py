"""The CT writer core: its encoder, its UID scheme, and the three writers that build on it."""

from __future__ import annotations

import math

import numpy as np
import pydicom
import pytest
from pydicom.uid import UID, JPEGLSLossless

from ctharmony.archive import ct_dataset as core
from ctharmony.archive.derived_writer import write_derived_series
from ctharmony.archive.headers import read_header
from ctharmony.archive.reader import read_series
from ctharmony.phantom.dicom_writer import write_ct_series as write_phantom
from testkit.synthetic_ct import write_ct_series as write_synthetic

TILT = math.radians(17.0)
TILTED = (1.0, 0.0, 0.0, 0.0, math.cos(TILT), math.sin(TILT))


def test_encoder_writes_what_save_as_writes(tmp_path):
    """Fast per-series encoding equals pydicom's own writer, with a character set and a per-slice sequence."""
    template = core.ct_template(rows=3, columns=4, pixel_spacing=(0.7, 0.9), orientation=TILTED, signed=True,
                                slice_thickness=2.5, tags={"SpecificCharacterSet": "ISO_IR 192",
                                                           "PatientName": "Ωμέγα^Jörg", "StudyDescription": None})
    stored = np.arange(12, dtype=np.int16).reshape(3, 4) - 6
    part = core.slice_part(stored, position=(1.5, -2.25, 3.125), sop_uid=core.derived_uid("s", 0), instance=7,
                           slice_location=True, source=(core.CT_IMAGE_STORAGE, "1.2.3.4"))
    fast = core.SliceEncoder(template).encode(part)
    core.full_dataset(template, part).save_as(tmp_path / "slow.dcm", enforce_file_format=True)
    assert fast == (tmp_path / "slow.dcm").read_bytes()
    (tmp_path / "fast.dcm").write_bytes(fast)
    ds = pydicom.dcmread(tmp_path / "fast.dcm")
    assert str(ds.PatientName) == "Ωμέγα^Jörg" and ds.StudyDescription == ""
    assert np.array_equal(ds.pixel_array, stored) and ds.SourceImageSequence[0].ReferencedSOPInstanceUID == "1.2.3.4"
    with pytest.raises(ValueError, match="per-slice element.*InstanceNumber"):
        core.SliceEncoder(core.ct_template(rows=1, columns=1, pixel_spacing=(1, 1), signed=True,
                                           tags={"InstanceNumber": 1}))


def test_uid_scheme_is_deterministic_valid_and_keeps_parts_apart():
    uid = core.derived_uid("1.2.3", "model", 3)
    assert uid == core.derived_uid("1.2.3", "model", "3") and UID(uid).is_valid and len(uid) <= 64
    assert core.derived_uid("ab", "c") != core.derived_uid("a", "bc")
    assert core.derived_uid("x") != core.derived_uid("x", namespace="ctharmony-phantom")


@pytest.mark.parametrize("value", [0.0, -0.0, 1.0, 0.1 + 0.2, -147.65625, 123456.789012345678, 1e-12, -3.5e17,
                                   math.cos(TILT), -math.sin(TILT)])
def test_decimal_strings_fit_and_keep_the_value(value):
    text = core.decimal_string(value)
    assert len(text) <= 16 and pydicom.valuerep.DSfloat(text, validation_mode=2) is not None
    assert float(text) == pytest.approx(value, rel=1e-9, abs=1e-300)


def test_three_writers_share_geometry_pixels_and_uids(tmp_path):
    """Phantom, derived and synthetic series pass the catalog's header checks and read back exactly."""
    rng = np.random.default_rng(0)
    hu = rng.integers(-1024, 3000, size=(4, 6, 5)).astype(np.float32)
    positions = np.array([[-20.0, -31.25, 40.0 + 2.5 * k / math.cos(TILT)] for k in range(4)])
    tags = {"PatientID": "P", "StudyInstanceUID": core.derived_uid("study"), "SeriesInstanceUID":
            core.derived_uid("series"), "FrameOfReferenceUID": core.derived_uid("frame"), "ImageType":
            ["ORIGINAL", "PRIMARY", "AXIAL"], "SliceThickness": "2.5", "KVP": None}
    phantom = write_phantom(hu, tmp_path / "phantom", tags=tags, origin=tuple(positions[0]), spacing=(2.5, 0.75, 0.5),
                            sop_uid_seed="seed", positions=positions, orientation=TILTED)
    source = read_series(phantom)
    derived = write_derived_series(source, tmp_path / "derived", model_name="m", model_version="1")
    again = write_derived_series(source, tmp_path / "again", model_name="m", model_version="1")
    synthetic = write_synthetic(tmp_path / "synthetic", slices=4, orientation=TILTED, positions=positions)
    for files in (phantom, derived, synthetic):
        assert [read_header(f, salt="s")["error"] for f in files] == [""] * 4
        volume = read_series(files)
        assert np.allclose(volume.positions, positions, atol=1e-9)
        assert np.allclose(volume.direction[:, :2].T.ravel(), TILTED, atol=1e-12)
        uids = [str(pydicom.dcmread(f, stop_before_pixels=True)[k].value) for f in files
                for k in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID")]
        assert all(UID(u).is_valid and u.startswith("2.25.") for u in uids)
    assert np.array_equal(source.hu, hu) and np.array_equal(read_series(derived).hu, hu)
    assert [pydicom.dcmread(f).SOPInstanceUID for f in derived] == [pydicom.dcmread(f).SOPInstanceUID for f in again]
    first = pydicom.dcmread(derived[0])
    assert first.SourceImageSequence[0].ReferencedSOPInstanceUID == source.tags["SOPInstanceUIDs"][0]


def test_unsupported_transfer_syntax_names_the_file(tmp_path):
    template = core.ct_template(rows=1, columns=1, pixel_spacing=(1, 1), signed=True)
    ds = core.full_dataset(template, core.slice_part(np.zeros((1, 1), np.int16), position=(0, 0, 0),
                                                     sop_uid=core.derived_uid("x"), instance=1))
    with pytest.raises(ValueError, match=r"x\.dcm: transfer syntax .* cannot be written"):
        core.save_slice(ds, tmp_path / "x.dcm", JPEGLSLossless)
    with pytest.raises(ValueError, match="is not supported"):
        write_synthetic(tmp_path / "s", transfer_syntax=JPEGLSLossless)
