"""Header-only reads: usable slices, and the file-level quarantine reasons (for every transfer syntax)."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import (
    BasicTextSRStorage,
    DeflatedExplicitVRLittleEndian,
    EncapsulatedPDFStorage,
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    MRImageStorage,
    RTStructureSetStorage,
    SecondaryCaptureImageStorage,
    SegmentationStorage,
)

from ctharmony.archive import headers
from ctharmony.archive import quarantine as q
from ctharmony.archive.header_checks import header_problems
from ctharmony.archive.headers import read_header
from ctharmony.archive.pixel_element import codestream_size
from ctharmony.archive.pseudonym import patient_key
from testkit import dicom_mutations as M
from testkit.synthetic_ct import write_ct_series

SYNTAXES = [ExplicitVRLittleEndian, JPEG2000Lossless, "1.2.840.10008.1.2"]  # and implicit VR

mutate = M.mutate


def test_good_slice_fields(messy_archive):
    path = messy_archive["ok"]["fbp"][0]
    rec = read_header(path, salt="s")
    full = pydicom.dcmread(path)
    assert rec["error"] == ""
    assert rec["series_uid"] == full.SeriesInstanceUID and rec["sop_uid"] == full.SOPInstanceUID
    assert rec["position"] == [float(v) for v in full.ImagePositionPatient]
    assert rec["orientation"] == [float(v) for v in full.ImageOrientationPatient]
    assert (rec["rows"], rec["columns"], rec["kvp"], rec["kernel"]) == (16, 16, 120.0, "Br40")
    assert rec["image_type"] == "ORIGINAL\\PRIMARY\\AXIAL"
    assert rec["patient_key"] == patient_key(full.PatientID, salt="s")
    assert full.PatientID not in str(rec)  # the ID never leaves the header reader


def test_compressed_slice_and_multi_valued_kernel(messy_archive):
    rec = read_header(messy_archive["ok"]["ir_j2k"][0], salt="s")
    assert rec["error"] == "" and rec["transfer_syntax"] == "1.2.840.10008.1.2.4.90"
    assert rec["kernel"] == "Br40\\3"


@pytest.mark.parametrize(
    ("case", "category", "words"),
    [
        ("not_dicom", q.NOT_DICOM, "DICM"),
        ("truncated", q.TRUNCATED, "remain"),
        ("no_pixels", q.NO_PIXELS, "pixel data"),
        ("undecodable", q.UNDECODABLE, "needs 128"),
        ("mr", q.NOT_CT, "MR Image Storage"),
        ("scout", q.LOCALIZER, "LOCALIZER"),
    ],
)
def test_file_level_reasons(messy_archive, case, category, words):
    rec = read_header(messy_archive["quarantine"][case][0], salt="s")
    assert q.category(rec["error"]) == category, rec["error"]
    assert words in rec["error"]


@pytest.fixture(scope="module")
def good_slices(tmp_path_factory) -> dict[str, Path]:
    """One good 32 x 32 slice per transfer syntax (explicit, JPEG 2000, implicit VR)."""
    root = tmp_path_factory.mktemp("good")
    return {ts: write_ct_series(root / ts, slices=1, rows=32, columns=32, transfer_syntax=ts)[0] for ts in SYNTAXES}


@pytest.mark.parametrize("syntax", SYNTAXES)
@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"Rows": 0}, "Rows is 0"),
        ({"Columns": 0}, "Columns is 0"),
        ({"Rows": None}, "Rows missing"),
        ({"BitsAllocated": None}, "BitsAllocated missing"),
        ({"BitsAllocated": 12}, "BitsAllocated is 12"),
        ({"BitsStored": 20}, "BitsStored is 20"),
        ({"SamplesPerPixel": 3}, "SamplesPerPixel is 3"),
        ({"PhotometricInterpretation": "RGB"}, "PhotometricInterpretation is RGB"),
        ({"PixelSpacing": None}, "PixelSpacing missing"),
        ({"PixelSpacing": [0, 0]}, "PixelSpacing is 0\\0"),
        ({"PixelSpacing": [0.7, -0.7]}, "PixelSpacing is 0.7\\-0.7"),
        ({"PixelSpacing": ["nan", "nan"]}, "PixelSpacing is nan\\nan"),
        ({"PixelSpacing": [0.7]}, "PixelSpacing has 1 value(s)"),
        ({"RescaleSlope": 0}, "RescaleSlope is 0"),
        ({"RescaleSlope": "inf"}, "RescaleSlope 'inf' is not a number"),
        ({"ImagePositionPatient": [0, "nan", 0]}, "ImagePositionPatient"),
        ({"ImageOrientationPatient": [1, 0, 0, 1, 0, 0]}, "not two perpendicular unit vectors"),
        ({"Modality": "MR"}, "Modality is MR in a CT Image Storage file"),
        ({"Modality": None}, "Modality missing"),
    ],
)
def test_invalid_header_values_for_every_transfer_syntax(good_slices, tmp_path, syntax, changes, words):
    rec = read_header(mutate(good_slices[syntax], tmp_path / "bad.dcm", **changes), salt="s")
    assert q.category(rec["error"]) == q.INVALID_HEADER, rec["error"]
    assert words in rec["error"]


@pytest.mark.parametrize("syntax", SYNTAXES)
def test_missing_or_empty_slope_means_one(good_slices, tmp_path, syntax):
    assert read_header(mutate(good_slices[syntax], tmp_path / "a.dcm", RescaleSlope=None), salt="s")["error"] == ""
    assert read_header(mutate(good_slices[syntax], tmp_path / "b.dcm", RescaleSlope=""), salt="s")["error"] == ""


def test_every_header_problem_is_listed(good_slices, tmp_path):
    rec = read_header(mutate(good_slices[JPEG2000Lossless], tmp_path / "bad.dcm", Rows=0, PixelSpacing=None,
                             RescaleSlope=0), salt="s")
    assert q.category(rec["error"]) == q.INVALID_HEADER
    for words in ("Rows is 0", "PixelSpacing missing", "RescaleSlope is 0"):
        assert words in rec["error"]


def test_missing_sop_class_is_an_invalid_header(good_slices, tmp_path):
    path = mutate(good_slices[ExplicitVRLittleEndian], tmp_path / "nosop.dcm", SOPClassUID=None,
                  meta={"MediaStorageSOPClassUID": None})
    rec = read_header(path, salt="s")
    assert rec["error"].startswith(q.INVALID_HEADER) and "SOP Class UID missing" in rec["error"]


@pytest.mark.parametrize(
    ("sop_class", "modality", "words"),
    [
        (SecondaryCaptureImageStorage, "OT", "Secondary Capture Image Storage (a screenshot or scanned image)"),
        (SecondaryCaptureImageStorage, "CT", "Secondary Capture Image Storage (a screenshot or scanned image)"),
        (MRImageStorage, "MR", "MR Image Storage"),
        (SegmentationStorage, "SEG", "DICOM SEG (Segmentation Storage)"),
        (RTStructureSetStorage, "RTSTRUCT", "RT Structure Set Storage (contours)"),
        (BasicTextSRStorage, "SR", "Basic Text SR Storage (a structured report)"),
        (EncapsulatedPDFStorage, "DOC", "Encapsulated PDF Storage (an encapsulated document)"),
        ("1.2.3.4.5", "CT", "SOP class 1.2.3.4.5 (not a standard storage class)"),
    ],
)
def test_non_ct_objects_say_what_they_are(good_slices, tmp_path, sop_class, modality, words):
    path = mutate(good_slices[ExplicitVRLittleEndian], tmp_path / "obj.dcm", SOPClassUID=sop_class, Modality=modality,
                  meta={"MediaStorageSOPClassUID": sop_class})
    rec = read_header(path, salt="s")
    assert rec["error"] == f"{q.NOT_CT}: {words}"
    assert "CT Image Storage" not in rec["error"]  # never "not a CT image: ... CT Image Storage"


def test_documents_without_pixel_data_are_named_not_called_truncated(good_slices, tmp_path):
    path = mutate(good_slices[ExplicitVRLittleEndian], tmp_path / "sr.dcm", SOPClassUID=BasicTextSRStorage,
                  Modality="SR", Rows=None, Columns=None, PixelSpacing=None, PixelData=None,
                  meta={"MediaStorageSOPClassUID": BasicTextSRStorage})
    assert read_header(path, salt="s")["error"] == f"{q.NOT_CT}: Basic Text SR Storage (a structured report)"


def test_enhanced_ct_is_multiframe(good_slices, tmp_path):
    path = mutate(good_slices[ExplicitVRLittleEndian], tmp_path / "enh.dcm", SOPClassUID=EnhancedCTImageStorage,
                  meta={"MediaStorageSOPClassUID": EnhancedCTImageStorage})
    rec = read_header(path, salt="s")
    assert rec["error"].startswith(q.MULTIFRAME) and "Enhanced CT Image Storage" in rec["error"]


@pytest.mark.parametrize("syntax", ["1.2.3.4.5.6", "1.2.840.10008.1.2.1/1"])
def test_unknown_transfer_syntax_is_quarantined_whatever_the_data_length(good_slices, tmp_path, syntax):
    path = M.set_transfer_syntax(good_slices[ExplicitVRLittleEndian], tmp_path / "odd.dcm", syntax)
    rec = read_header(path, salt="s")
    assert rec["error"] == f"{q.UNDECODABLE}: unknown transfer syntax {syntax!r} (not a DICOM transfer syntax)"


def test_transfer_syntax_without_decoder_is_undecodable(messy_archive, tmp_path):
    ds = pydicom.dcmread(messy_archive["ok"]["ir_j2k"][0])
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: no decoder is installed
    path = tmp_path / "mpeg.dcm"
    ds.save_as(path)
    rec = read_header(path, salt="s")
    assert rec["error"].startswith(q.UNDECODABLE) and "1.2.840.10008.1.2.4.100" in rec["error"]
    assert "MPEG2" in rec["error"]


def test_pixel_data_encoding_must_match_the_transfer_syntax(good_slices, tmp_path):
    native_as_j2k = M.set_transfer_syntax(good_slices[ExplicitVRLittleEndian], tmp_path / "a.dcm", JPEG2000Lossless)
    assert "uncompressed pixel data under the compressed" in read_header(native_as_j2k, salt="s")["error"]
    j2k_as_native = M.set_transfer_syntax(good_slices[JPEG2000Lossless], tmp_path / "b.dcm", ExplicitVRLittleEndian)
    assert "compressed (encapsulated) pixel data under the uncompressed" in read_header(j2k_as_native,
                                                                                      salt="s")["error"]


@pytest.mark.parametrize("syntax", [JPEG2000Lossless, JPEGLosslessSV1])
def test_compressed_frame_size_must_match_rows_and_columns(tmp_path, syntax):
    [good] = write_ct_series(tmp_path / "c", slices=1, rows=64, columns=48, transfer_syntax=syntax)
    rec = read_header(good, salt="s")
    assert rec["error"] == ""
    bad = read_header(mutate(good, tmp_path / "bad.dcm", Rows=96), salt="s")
    assert bad["error"].startswith(q.UNDECODABLE), bad["error"]
    assert "image inside is 64 x 48 pixels, the header says Rows 96 x Columns 48" in bad["error"]


def test_codestream_size_of_the_real_jpeg2000_series(real_data):
    path = sorted((real_data / "siemens-abdomen-ct").iterdir())[0]
    frame = next(pydicom.encaps.generate_fragmented_frames(pydicom.dcmread(path).PixelData))[0]
    assert codestream_size(frame[:64]) == ("JPEG 2000", 512, 512, 1)
    assert codestream_size(b"\x00" * 64) is None


def test_deflated_file_is_read(good_slices, tmp_path):
    ds = pydicom.dcmread(good_slices[ExplicitVRLittleEndian])
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(tmp_path / "deflated.dcm")
    rec = read_header(tmp_path / "deflated.dcm", salt="s")
    assert rec["error"] == "" and (rec["rows"], rec["columns"]) == (32, 32)


def test_empty_and_unreadable_files(tmp_path):
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    assert read_header(empty, salt="s")["error"] == "not a DICOM file: empty file"
    missing = read_header(tmp_path / "gone.dcm", salt="s")
    assert q.category(missing["error"]) == q.UNREADABLE


def test_compressed_file_cut_short_is_truncated(messy_archive, tmp_path):
    data = messy_archive["ok"]["ir_j2k"][0].read_bytes()
    cut = tmp_path / "cut_j2k.dcm"
    cut.write_bytes(data[:-50])
    assert q.category(read_header(cut, salt="s")["error"]) == q.TRUNCATED


def test_real_file_cut_anywhere_in_its_header_is_truncated_not_mislabelled(real_data, tmp_path):
    data = sorted((real_data / "siemens-abdomen-ct").iterdir())[0].read_bytes()
    pixels = data.find(b"\xe0\x7f\x10\x00")
    cut = tmp_path / "cut.dcm"
    for offset in range(140, pixels, 97):
        cut.write_bytes(data[:offset])
        error = read_header(cut, salt="s")["error"]
        assert q.category(error) in (q.TRUNCATED, q.NO_PIXELS), (offset, error)
    value = data.find(b"Biograph40_mCT")  # cut inside a value the reader keeps
    cut.write_bytes(data[: value + 5])
    assert read_header(cut, salt="s")["error"].startswith(q.TRUNCATED)


def test_implicit_vr_file(tmp_path):
    [path] = write_ct_series(tmp_path / "imp", slices=1, transfer_syntax="1.2.840.10008.1.2")
    rec = read_header(path, salt="s")
    assert rec["error"] == "" and rec["transfer_syntax"] == "1.2.840.10008.1.2"
    assert (rec["rows"], rec["columns"], rec["bits"]) == (16, 16, 16)
    path.write_bytes(path.read_bytes()[:-10])
    assert read_header(path, salt="s")["error"].startswith("truncated file")


def test_real_siemens_headers_match_pydicom(real_data):
    for path in sorted((real_data / "siemens-abdomen-ct").iterdir())[:3]:
        rec = read_header(path, salt="s")
        full = pydicom.dcmread(path, stop_before_pixels=True)
        assert rec["error"] == ""
        assert rec["sop_uid"] == full.file_meta.MediaStorageSOPInstanceUID  # empty in the dataset itself
        assert rec["position"] == [float(v) for v in full.ImagePositionPatient]
        assert (rec["kernel"], rec["kvp"], rec["rows"]) == ("\\".join(full.ConvolutionKernel), 120.0, 512)
        assert rec["series_description"] == full.SeriesDescription and rec["model"] == full.ManufacturerModelName


class FlakyOpen:
    """``open`` that raises OSError(``code``) for the first ``failures`` calls, then opens for real."""

    def __init__(self, code: int, failures: int):
        self.code, self.failures, self.calls = code, failures, 0

    def __call__(self, path, *args, **kwargs):
        self.calls += 1
        if self.calls <= self.failures:
            raise OSError(self.code, __import__("os").strerror(self.code), str(path))
        return open(path, *args, **kwargs)


@pytest.mark.parametrize("code", [errno.EIO, errno.EAGAIN, errno.ESTALE, errno.EINTR])
def test_transient_read_error_is_retried(good_slices, monkeypatch, code):
    flaky = FlakyOpen(code, failures=1)
    monkeypatch.setattr(headers, "open", flaky, raising=False)
    monkeypatch.setattr(headers, "RETRY_BACKOFF_S", 0.0)
    rec = read_header(good_slices[JPEG2000Lossless], salt="s")
    assert rec["error"] == "" and flaky.calls == 2


def test_persistent_read_error_is_unreadable_after_retries(good_slices, monkeypatch):
    flaky = FlakyOpen(errno.EIO, failures=100)
    monkeypatch.setattr(headers, "open", flaky, raising=False)
    monkeypatch.setattr(headers, "RETRY_BACKOFF_S", 0.0)
    rec = read_header(good_slices[ExplicitVRLittleEndian], salt="s")
    assert rec["error"] == f"{q.UNREADABLE}: Input/output error (tried {headers.READ_ATTEMPTS} times)"
    assert flaky.calls == headers.READ_ATTEMPTS and rec["bytes"] > 0


def test_permanent_error_is_not_retried(good_slices, monkeypatch):
    flaky = FlakyOpen(errno.EACCES, failures=100)
    monkeypatch.setattr(headers, "open", flaky, raising=False)
    rec = read_header(good_slices[ExplicitVRLittleEndian], salt="s")
    assert rec["error"] == f"{q.UNREADABLE}: Permission denied" and flaky.calls == 1


def test_header_problems_on_plain_values():
    good = {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.2", "Modality": "CT", "Rows": 512, "Columns": 512,
            "BitsAllocated": 16, "BitsStored": 12, "SamplesPerPixel": 1, "PixelRepresentation": 0,
            "PhotometricInterpretation": "MONOCHROME2", "PixelSpacing": "0.7\\0.7", "RescaleSlope": None,
            "RescaleIntercept": "-1024", "ImagePositionPatient": "0\\0\\0",
            "ImageOrientationPatient": "1\\0\\0\\0\\1\\0"}
    assert header_problems(good) == []
    assert header_problems({**good, "ImagePositionPatient": None}) == []  # missing geometry: the series' business
    assert header_problems({**good, "RescaleIntercept": "abc"}) == ["RescaleIntercept 'abc' is not a number"]
    assert header_problems({**good, "PixelRepresentation": None}) == ["PixelRepresentation missing"]
    assert header_problems({**good, "PixelSpacing": "a\\b"}) == ["PixelSpacing 'a\\\\b' is not numeric"]
    assert header_problems({**good, "ImageOrientationPatient": "1\\0\\0\\0\\0.5\\0"}) == [
        "ImageOrientationPatient is not two perpendicular unit vectors"]
    assert np.all([p.startswith("B") for p in header_problems({**good, "BitsAllocated": None, "BitsStored": 40})])
