"""Grouping, splitting, sorting along the normal, spacing from positions and geometry flags."""

from __future__ import annotations

import math

import numpy as np

from ctharmony.archive import quarantine as q
from ctharmony.archive.series import group_series, slice_geometry, surrogate_series_uid

AXIAL = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def test_sorting_uses_the_normal_not_names_or_z():
    sagittal = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]  # normal = (-1, 0, 0): slices advance along -x
    geo = slice_geometry([[-3.0, 0, 0], [0.0, 0, 0], [-1.5, 0, 0]], sagittal)
    assert geo.order == [1, 2, 0] and math.isclose(geo.spacing, 1.5)
    assert np.allclose(geo.normal, [-1, 0, 0]) and geo.warnings == []


def test_flags_gap_variable_spacing_and_tilt():
    gap = slice_geometry([[0, 0, z] for z in (0, 2, 4, 10, 12)], AXIAL)
    assert gap.spacing == 2.0 and any(w.startswith("gap: about 2 missing") for w in gap.warnings)
    variable = slice_geometry([[0, 0, z] for z in (0, 2, 4.3, 6.0, 8.1)], AXIAL)
    assert any(w.startswith("variable spacing") for w in variable.warnings)
    tilted = slice_geometry([[0, 0.5 * k, 2.0 * k] for k in range(4)], AXIAL)
    assert any("gantry tilt" in w and "14.0 degrees" in w for w in tilted.warnings)
    duplicate = slice_geometry([[0, 0, 0], [0, 0, 0]], AXIAL)
    assert duplicate.error.startswith(q.INCONSISTENT_GEOMETRY)


def _rec(path, z, uid="1.2.3", **over):
    rec = {"path": path, "bytes": 10, "error": "", "sop_uid": f"{uid}.{path}", "series_uid": uid,
           "study_uid": "9", "frame_of_reference_uid": "8", "patient_key": "k", "site": "s",
           "manufacturer": "m", "model": "mm", "kernel": "Br40", "kvp": 120.0,
           "image_type": "ORIGINAL\\PRIMARY\\AXIAL", "series_description": "FBP", "rows": 8, "columns": 8,
           "position": [0.0, 0.0, z], "orientation": AXIAL, "pixel_spacing": [0.5, 0.5],
           "slice_thickness": 2.0}
    rec.update(over)
    return rec


def _classify(row):
    return "FBP", "test-rule"


def test_split_by_size_and_image_type_with_suffixed_keys():
    recs = [_rec(f"/a/{k}", 2.0 * k) for k in range(4)]
    recs += [_rec(f"/b/{k}", 2.0 * k, rows=4) for k in range(3)]
    recs += [_rec(f"/c/{k}", 2.0 * k, image_type="DERIVED\\SECONDARY") for k in range(2)]
    rows = group_series(recs, _classify)
    keys = {r["series_key"]: r for r in rows}
    assert set(keys) == {"1.2.3", "1.2.3.2", "1.2.3.3"}
    assert keys["1.2.3"]["slices"] == 4 and keys["1.2.3.2"]["slices"] == 3
    assert all(r["status"] == "ok" and r["protocol_rule"] == "test-rule" for r in rows)
    assert keys["1.2.3"]["spacing"] == [2.0, 0.5, 0.5]


def test_files_sorted_along_normal_and_quarantine_rows():
    recs = [_rec(f"/a/{k}", z) for k, z in enumerate((4.0, 0.0, 2.0))]
    recs.append(_rec("/bad", 0.0, error="not a DICOM file: x", series_uid=""))
    recs.append(_rec("/mr1", 0.0, uid="7", error="not a CT image: modality MR"))
    recs.append(_rec("/mr2", 1.0, uid="7", error="not a CT image: modality MR"))
    recs.append(_rec("/single", 0.0, uid="6"))
    recs.append(_rec("/nopos", 0.0, uid="5", position=[]))
    recs.append(_rec("/nopos2", 1.0, uid="5"))
    rows = {r["series_key"]: r for r in group_series(recs, _classify)}
    assert rows["1.2.3"]["files"] == ["/a/1", "/a/2", "/a/0"]
    assert rows["7"]["files"] == ["/mr1", "/mr2"] and rows["7"]["status"] == "quarantined"
    assert rows["6"]["reason"].startswith(q.LOCALIZER)
    assert rows["5"]["reason"].startswith(q.INCONSISTENT_GEOMETRY)
    file_rows = [r for r in rows.values() if r["files"] == ["/bad"]]
    assert len(file_rows) == 1 and file_rows[0]["series_key"].startswith("file-")
    files = [f for r in rows.values() for f in r["files"]]
    assert sorted(files) == sorted(r["path"] for r in recs)  # every file in exactly one row


def test_missing_series_uid_gets_a_surrogate_key():
    recs = [_rec(f"/d/{k}", 2.0 * k, uid="") for k in range(3)]
    rows = group_series(recs, _classify)
    assert len(rows) == 1
    assert rows[0]["series_key"] == surrogate_series_uid([r["sop_uid"] for r in recs])
    assert rows[0]["series_uid"] == "" and "surrogate" in rows[0]["warnings"]
