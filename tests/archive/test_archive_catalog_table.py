"""The one catalog reader: typed SeriesRows with real lists, clear errors, and a user protocol flowing to convert."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from ctharmony.archive import Catalog, CatalogError, SeriesRow, read_catalog
from ctharmony.archive import quarantine as q
from ctharmony.archive.catalog import catalog_frame, write_catalog
from testkit.synthetic_ct import write_ct_series

MONO = ["DERIVED", "PRIMARY", "AXIAL", "MONOENERGETIC"]


def _rows() -> list[dict]:
    series = [("1.2.1", "M80", 3), ("1.2.2", "M40", 4), ("1.2.3", "FBP", 2)]
    rows = [{"series_key": key, "series_uid": key, "study_uid": "1.2", "patient_key": "pk-a", "site": "site-a",
             "protocol": protocol, "slices": n, "rows": 16, "columns": 16, "kvp": 120.0,
             "spacing": [2.5, 0.75, 0.7], "slice_steps_mm": [2.5], "files": [f"/a/{key}/{i}.dcm" for i in range(n)]}
            for key, protocol, n in series]
    return [*rows, q.file_row("/a/notes.txt", q.reason(q.NOT_DICOM, "no DICM marker"))]


def test_series_rows_are_typed_with_real_lists(tmp_path):
    path = write_catalog(catalog_frame(_rows()), tmp_path / "catalog.parquet")
    catalog = read_catalog(path)
    assert isinstance(catalog, Catalog) and catalog.path == path and len(catalog) == 4
    assert list(catalog.frame.columns) == list(q.CATALOG_COLUMNS)
    assert [f.name for f in dataclasses.fields(SeriesRow)] == list(q.CATALOG_COLUMNS)
    ok = catalog.series()
    assert [r.series_key for r in ok] == ["1.2.1", "1.2.2", "1.2.3"]
    m40 = catalog.series(status="ok", protocols=("M40",))
    assert [r.series_key for r in m40] == ["1.2.2"]
    row = m40[0]
    assert row.files == tuple(f"/a/1.2.2/{i}.dcm" for i in range(4))
    assert all(type(f) is str for f in row.files)
    assert row.spacing == (2.5, 0.75, 0.7) and all(type(v) is float for v in row.spacing)
    assert row.slice_steps_mm == (2.5,)
    assert (row.slices, row.rows, row.kvp, row.patient_key, row.site) == (4, 16, 120.0, "pk-a", "site-a")
    assert math.isnan(row.slice_thickness) and row.tilt_degrees == 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.protocol = "M80"  # type: ignore[misc]
    assert row.as_dict()["files"] == list(row.files)
    every = catalog.series(status=None)
    assert len(every) == 4 and every[-1].status == "quarantined" and every[-1].files == ("/a/notes.txt",)
    assert every[-1].spacing == () and every[-1].reason.startswith(q.NOT_DICOM)
    assert catalog.series(protocols="M80")[0].series_key == "1.2.1"
    assert catalog.series(protocols=()) == []


def test_a_catalog_without_the_newer_columns_reads_with_defaults(tmp_path):
    path = tmp_path / "old.parquet"
    pd.DataFrame([{"series_key": "s", "study_uid": "1.2", "patient_key": "p", "protocol": "IR",
                   "files": ["/x/1", "/x/2"], "status": "ok", "slices": 2}]).to_parquet(path)
    catalog = read_catalog(path)
    assert list(catalog.frame.columns) == list(q.CATALOG_COLUMNS)
    (row,) = catalog.series()
    assert row.files == ("/x/1", "/x/2") and row.slices == 2
    assert (row.geometry, row.recon_info, row.spacing, row.largest_gap_mm) == ("", "", (), 0.0)


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (None, "no such catalog file"),
        (lambda p: p.write_text("series_key,files\n", encoding="utf-8"), "not a readable Parquet catalog"),
        (lambda p: pd.DataFrame({"series_key": ["s"], "files": [["/x"]]}).to_parquet(p),
         "missing column.*study_uid, patient_key, protocol, status"),
        (lambda p: pd.DataFrame({"series_key": ["s"], "study_uid": ["1"], "patient_key": ["p"], "protocol": ["IR"],
                                 "status": ["ok"], "files": ['["/x/1.dcm"]']}).to_parquet(p),
         "column 'files' holds (large_)?string, the catalog needs list<item: string>"),
    ],
    ids=["absent", "not-parquet", "missing-columns", "files-as-json-text"],
)
def test_errors_name_the_file_and_the_problem(tmp_path, write, message):
    path = tmp_path / "catalog.parquet"
    if write is not None:
        write(path)
    with pytest.raises(CatalogError, match=message) as caught:
        read_catalog(path)
    assert str(path) in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_every_package_takes_the_protocols_from_the_registry():
    """(The training defaults, written out in ``models.spec``, are checked in tests/models/test_spec.py.)"""
    from ctharmony.archive import protocols
    from ctharmony.evaluate import cohort
    from ctharmony.phantom import generate, physics

    assert protocols.PROTOCOLS == (*protocols.PAPER_PROTOCOLS, protocols.UNKNOWN)
    assert protocols.REFERENCE_PROTOCOL in protocols.PAPER_PROTOCOLS
    assert protocols.load_rules().protocols == protocols.PROTOCOLS
    assert cohort.PAPER_PROTOCOLS is protocols.PAPER_PROTOCOLS
    assert physics.PROTOCOLS is protocols.PAPER_PROTOCOLS and generate.PROTOCOLS is protocols.PAPER_PROTOCOLS
    assert physics.MONO_KEV == protocols.MONO_KEV


@pytest.mark.slow
def test_a_user_protocol_flows_from_the_rules_file_to_convert_items(ray_local, tmp_path):
    """build_catalog with a rules file declaring M70 -> typed rows -> convert's items -> a read pipeline row."""
    from ctharmony.archive import build_catalog, read_series
    from ctharmony.infer.pipeline import load_catalog_series, read_catalog_row
    from ctharmony.infer.policy import Policies, skip_reason
    from ctharmony.infer.writer import volume_of

    root = tmp_path / "archive"
    m70 = write_ct_series(root / "site-a" / "p1" / "m70", slices=3, series_uid="1.2.826.0.9.70", study_uid="1.2.9",
                          tags={"ImageType": MONO, "SeriesDescription": "Abdomen PV Mono+ 70keV"})
    write_ct_series(root / "site-a" / "p1" / "m80", slices=3, series_uid="1.2.826.0.9.80", study_uid="1.2.9",
                    tags={"ImageType": MONO, "SeriesDescription": "Abdomen PV Mono+ 80keV"})
    (root / "site-a" / "readme.txt").write_text("not an image\n", encoding="utf-8")
    rules = tmp_path / "rules.yaml"
    rules.write_text("protocols:\n  M70: {mono_kev: 70}\nrules: []\n", encoding="utf-8")
    built = build_catalog(root, tmp_path / "catalog.parquet", rules=rules, progress=False)

    catalog = read_catalog(tmp_path / "catalog.parquet")
    assert catalog.frame["series_key"].tolist() == built["series_key"].tolist()
    (row,) = catalog.series(protocols=("M70",))
    assert row.protocol_rule == "monoenergetic-70kev" and row.site == "site-a" and row.study_uid == "1.2.9"
    assert sorted(row.files) == sorted(map(str, m70)) and row.slices == 3
    assert len(row.spacing) == 3 and row.spacing[0] == pytest.approx(2.0)
    assert [r.protocol for r in catalog.series()] == ["M70", "M80"]
    assert len(catalog.series(status="quarantined")) == 1

    items = {item["protocol"]: item for item in load_catalog_series(tmp_path / "catalog.parquet")}
    assert set(items) == {"M70", "M80"}
    item = items["M70"]
    assert item["files"] == list(row.files) and item["series_key"] == row.series_key
    assert skip_reason(item, Policies(on_unknown="skip")) == ""  # a declared protocol is not "unknown"

    read = read_catalog_row(item)
    assert read["status"] == "ok", read["reason"]
    assert read["protocol"] == "M70" and not any(isinstance(v, bytes) for v in read.values())  # nothing pickled
    direct = read_series(row.files)
    rebuilt = volume_of(read, read["hu"])
    assert rebuilt.tags == direct.tags
    np.testing.assert_array_equal(rebuilt.positions, direct.positions)
