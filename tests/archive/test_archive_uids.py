"""UIDs: the validator against pydicom's own check (``UID.is_valid``); invalid UIDs never reach a key or an output."""

from __future__ import annotations

import warnings

import numpy as np
import pydicom
import pytest
from pydicom.uid import UID, generate_uid

from ctharmony.archive.ct_dataset import derived_uid
from ctharmony.archive.derived_writer import write_derived_series
from ctharmony.archive.headers import read_header
from ctharmony.archive.protocols import load_rules
from ctharmony.archive.reader import read_series
from ctharmony.archive.seg import read_seg, write_seg
from ctharmony.archive.series import group_series, surrogate_series_uid
from ctharmony.archive.uids import invalid_uid_note, is_valid_uid, uid_problem
from ctharmony.phantom.dicom_writer import deterministic_uid
from testkit import dicom_mutations as M
from testkit.real_cases import require_real_data
from testkit.synthetic_ct import write_ct_series

UID_KEYWORDS = ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID", "SOPClassUID")


def _agrees_with_pydicom(value: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the invalid values it is given
        reference = UID(value)
    assert reference == value  # pydicom judges the value itself (it strips outer spaces, which readers do too)
    return is_valid_uid(value) == reference.is_valid and (uid_problem(value) == "") == reference.is_valid


def test_every_uid_of_the_real_cases_is_valid():
    values = set()
    for path in sorted(p for p in require_real_data().rglob("*") if p.is_file() and p.suffix not in (".gz", ".md")):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        values |= {str(ds.get(k)) for k in UID_KEYWORDS if ds.get(k)}
        meta = [ds.file_meta[tag] for tag in list(ds.file_meta.keys())]
        values |= {str(e.value) for e in meta if e.VR == "UI" and e.value}
    assert len(values) > 50
    assert [v for v in values if not is_valid_uid(v) or not UID(v).is_valid] == []


def test_generated_uids_are_valid():
    values = [deterministic_uid("seed", k, "series", "M80") for k in range(200)]  # the phantom's
    values += [derived_uid("series", k) for k in range(200)]  # derived and synthetic series
    values += [surrogate_series_uid([f"1.2.{k}"], "/folder") for k in range(50)] + [generate_uid() for _ in range(50)]
    values += ["0", "7", "1.0.2", "1.2.840.10008.1.2.4.90", "2.25." + "9" * 59]  # single components, zeros
    assert [v for v in values if not is_valid_uid(v) or not _agrees_with_pydicom(v)] == []


@pytest.mark.parametrize(("value", "words"), [
    ("../../../../etc/passwd", "characters other than digits and dots"),
    ("9" * 200, "200 characters, more than 64"),
    ("2.25." + "9" * 60, "65 characters"),
    ("1.2.03.4", "a component with a leading zero"),
    ("00", "a component with a leading zero"),
    ("1..2", "an empty component"),
    (".1.2", "an empty component"),
    ("1.2.", "an empty component"),
    ("a/b", "characters other than digits and dots"),
    ("1.2 .3", "characters other than digits and dots"),
    ("", "empty"),
])
def test_invalid_uids_are_named_with_their_reason(value, words):
    assert not is_valid_uid(value) and words in uid_problem(value) and _agrees_with_pydicom(value)
    note = invalid_uid_note("SeriesInstanceUID", value)
    assert note == "" if not value else (note.startswith("SeriesInstanceUID '") and words in note)


def test_random_values_agree_with_pydicom():
    rng = np.random.default_rng(3)
    alphabet = np.array(list("0123456789" * 4 + "." * 8 + "0a/ _-"))
    values = ["".join(rng.choice(alphabet, size=int(rng.integers(1, 80)))).strip() or "0" for _ in range(5000)]
    values += [".".join(str(int(n)) for n in rng.integers(0, 10**6, size=int(rng.integers(1, 14))))
               for _ in range(2000)]
    disagree = [v for v in values if not _agrees_with_pydicom(v)]
    assert disagree == [] and 0 < sum(map(is_valid_uid, values)) < len(values)


def test_derived_outputs_of_a_series_with_invalid_uids_reference_valid_ones(tmp_path, validate_dicom):
    """Catalog key, derived series and SEG of slices whose every UID is invalid: surrogates, all valid."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the invalid values it writes
        good = write_ct_series(tmp_path / "good", slices=3, rows=16, columns=16)
        files = [M.mutate(path, tmp_path / "bad" / f"{k}.dcm", meta={"MediaStorageSOPInstanceUID": f"1.2.0{k}"},
                          SOPInstanceUID=f"1.2.0{k}", SeriesInstanceUID="../../../../etc/passwd",
                          StudyInstanceUID="9" * 200, FrameOfReferenceUID="1..2") for k, path in enumerate(good)]
        volume = read_series(files)
        rows = group_series([read_header(f, salt="s") for f in files], load_rules(None).classify)
    tags = volume.tags
    assert set(tags["surrogate_uids"]) == {"SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID",
                                           "SOPInstanceUID"}
    assert all(UID(tags[k]).is_valid for k in ("SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID"))
    assert all(UID(u).is_valid for u in tags["SOPInstanceUIDs"]) and len(set(tags["SOPInstanceUIDs"])) == 3
    assert [r["series_key"] for r in rows] == [tags["SeriesInstanceUID"]]  # the catalog's key is the derived source

    mask = np.zeros(volume.shape, np.uint8)
    mask[:, 4:9, 4:9] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns when it reads the source files' invalid values
        derived = write_derived_series(volume, tmp_path / "derived", model_name="m", model_version="1")
        seg = write_seg(mask, volume, tmp_path / "seg.dcm", algorithm_name="unet", algorithm_version="1")
    with pytest.raises(ValueError, match="Invalid value for VR UI"):
        validate_dicom(files[0])  # the check below would see an invalid UID
    for path in [*derived, seg]:
        validate_dicom(path)  # strict: every UI value of the output is a valid UID
    first = pydicom.dcmread(derived[0])
    assert first.StudyInstanceUID == tags["StudyInstanceUID"]
    assert first.FrameOfReferenceUID == tags["FrameOfReferenceUID"]
    assert {pydicom.dcmread(p).SourceImageSequence[0].ReferencedSOPInstanceUID for p in derived} == set(
        tags["SOPInstanceUIDs"])
    ds = pydicom.dcmread(seg)
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == tags["SeriesInstanceUID"]
    assert (ds.StudyInstanceUID, ds.FrameOfReferenceUID) == (tags["StudyInstanceUID"], tags["FrameOfReferenceUID"])
    assert np.array_equal(read_seg(seg, volume), mask)

