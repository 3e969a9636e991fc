"""Header-only reads: usable slices, and the file-level quarantine reasons."""

from __future__ import annotations

import pydicom
import pytest

from ctharmony.archive import quarantine as q
from ctharmony.archive.headers import read_header
from ctharmony.archive.pseudonym import patient_key


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
        ("mr", q.NOT_CT, "modality MR"),
        ("scout", q.LOCALIZER, "LOCALIZER"),
    ],
)
def test_file_level_reasons(messy_archive, case, category, words):
    rec = read_header(messy_archive["quarantine"][case][0], salt="s")
    assert q.category(rec["error"]) == category, rec["error"]
    assert words in rec["error"]


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


def test_transfer_syntax_without_decoder_is_undecodable(messy_archive, tmp_path):
    ds = pydicom.dcmread(messy_archive["ok"]["ir_j2k"][0])
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: no decoder is installed
    path = tmp_path / "mpeg.dcm"
    ds.save_as(path)
    rec = read_header(path, salt="s")
    assert rec["error"].startswith(q.UNDECODABLE) and "1.2.840.10008.1.2.4.100" in rec["error"]


def test_implicit_vr_file(tmp_path):
    from ctharmony.archive.synthetic import write_ct_series

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
