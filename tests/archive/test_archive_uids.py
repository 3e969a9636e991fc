"""UIDs: the validator against pydicom's own check (``UID.is_valid``)."""

from __future__ import annotations

import warnings

import numpy as np
import pydicom
import pytest
from pydicom.uid import UID, generate_uid

from ctharmony.archive.ct_dataset import derived_uid
from ctharmony.archive.series import surrogate_series_uid
from ctharmony.archive.uids import invalid_uid_note, is_valid_uid, uid_problem
from ctharmony.phantom.dicom_writer import deterministic_uid
from testkit.real_cases import require_real_data

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

