"""Grouping, splitting, sorting along the normal, spacing from positions and geometry flags."""

from __future__ import annotations

import math

import numpy as np
import pytest

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
    assert gap.largest_gap_mm == 6.0 and gap.steps_mm == [2.0, 6.0] and gap.describe() == "gap"
    tilted = slice_geometry([[0, 0.5 * k, 2.0 * k] for k in range(4)], AXIAL)
    assert any("gantry tilt" in w and "14.0 degrees" in w for w in tilted.warnings)
    assert tilted.tilt_degrees == pytest.approx(14.036, abs=1e-3) and tilted.describe() == "gantry tilt"
    assert variable.describe() == "variable spacing" and variable.largest_gap_mm == 0.0
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
    # the slice without geometry is split off; the one left cannot form a volume on its own
    assert rows["5.no-geometry"]["files"] == ["/nopos"]
    assert rows["5.no-geometry"]["reason"].startswith(q.INCONSISTENT_GEOMETRY)
    assert rows["5"]["files"] == ["/nopos2"] and rows["5"]["reason"].startswith(q.LOCALIZER)
    file_rows = [r for r in rows.values() if r["files"] == ["/bad"]]
    assert len(file_rows) == 1 and file_rows[0]["series_key"].startswith("file-")
    files = [f for r in rows.values() for f in r["files"]]
    assert sorted(files) == sorted(r["path"] for r in recs)  # every file in exactly one row


def test_missing_series_uid_gets_a_surrogate_key():
    recs = [_rec(f"/d/{k}", 2.0 * k, uid="") for k in range(3)]
    rows = group_series(recs, _classify)
    assert len(rows) == 1
    assert rows[0]["series_key"] == surrogate_series_uid([r["sop_uid"] for r in recs], "/d")
    assert rows[0]["series_uid"] == "" and "surrogate" in rows[0]["warnings"]


def _keys(rows):
    keys = [r["series_key"] for r in rows]
    assert len(keys) == len(set(keys)), f"series_key not unique: {keys}"
    return {r["series_key"]: r for r in rows}


def test_same_export_without_uids_in_two_folders_gives_two_series():
    recs = [_rec(f"/a/{k}", 2.0 * k, uid="", sop_uid=f"9.{k}") for k in range(3)]
    recs += [_rec(f"/b/{k}", 2.0 * k, uid="", sop_uid=f"9.{k}") for k in range(3)]
    rows = _keys(group_series(recs, _classify, same_content=lambda a, b: True))
    assert len(rows) == 2 and all(r["status"] == "ok" and r["slices"] == 3 for r in rows.values())
    assert {tuple(r["files"]) for r in rows.values()} == {("/a/0", "/a/1", "/a/2"), ("/b/0", "/b/1", "/b/2")}


def test_exact_copies_are_kept_once_and_reported():
    recs = [_rec(f"/a/{k}", 2.0 * k) for k in range(4)]
    recs += [_rec(f"/copy/{k}", 2.0 * k, sop_uid=f"1.2.3./a/{k}") for k in range(4)]  # the same export again
    rows = _keys(group_series(recs, _classify, same_content=lambda a, b: True))
    assert rows["1.2.3"]["files"] == [f"/a/{k}" for k in range(4)] and rows["1.2.3"]["status"] == "ok"
    dup = rows["1.2.3.duplicates"]
    assert dup["files"] == [f"/copy/{k}" for k in range(4)] and q.category(dup["reason"]) == q.DUPLICATE


def test_conflicting_copies_are_set_aside_and_the_rest_survives():
    recs = [_rec(f"/a/{k}", 2.0 * k) for k in range(5)]
    recs.append(_rec("/b/2", 2.0 * 2, sop_uid="1.2.3./a/2"))  # same SOP Instance UID, other bytes
    rows = _keys(group_series(recs, _classify, same_content=lambda a, b: False, same_image=lambda a, b: False))
    assert rows["1.2.3"]["files"] == ["/a/0", "/a/1", "/a/3", "/a/4"] and rows["1.2.3"]["status"] == "ok"
    assert "gap" in rows["1.2.3"]["geometry"] and rows["1.2.3"]["largest_gap_mm"] == 4.0
    conflict = rows["1.2.3.conflicts"]
    assert conflict["files"] == ["/a/2", "/b/2"] and q.category(conflict["reason"]) == q.CONFLICTING_DUPLICATE


def test_one_bad_slice_does_not_sink_the_series():
    recs = [_rec(f"/a/{k}", 2.0 * k) for k in range(12)]
    recs.append(_rec("/a/nopos", 30.0, position=[]))
    recs.append(_rec("/a/odd", 40.0, pixel_spacing=[0.7, 0.7]))
    rows = _keys(group_series(recs, _classify))
    assert rows["1.2.3"]["status"] == "ok" and rows["1.2.3"]["slices"] == 12
    assert rows["1.2.3"]["geometry"] == "regular" and rows["1.2.3"]["slice_steps_mm"] == [2.0]
    assert rows["1.2.3.no-geometry"]["files"] == ["/a/nopos"]
    assert rows["1.2.3.split-1"]["files"] == ["/a/odd"] and "pixel spacing" in rows["1.2.3.split-1"]["reason"]
    assert sorted(f for r in rows.values() for f in r["files"]) == sorted(r["path"] for r in recs)


def test_a_quarantined_series_lists_all_its_problems():
    rows = _keys(group_series([_rec("/y/0", 0.0, uid="5", position=[])], _classify))
    reasons = rows["5"]["reason"].split("; ")
    assert rows["5"]["status"] == "quarantined" and len(reasons) == 2
    assert {q.category(r) for r in reasons} == {q.INCONSISTENT_GEOMETRY, q.LOCALIZER}


def test_a_broken_copy_is_judged_on_its_own_and_never_competes():
    recs = [_rec(f"/a/{k}", 2.0 * k) for k in range(4)]
    recs.append(_rec("/b/nopos", 2.0, sop_uid="1.2.3./a/1", position=[]))  # same instance, no position
    recs.append(_rec("/b/bad", 4.0, sop_uid="1.2.3./a/2", error="invalid image header: Rows is 0"))
    rows = _keys(group_series(recs, _classify, same_content=lambda a, b: False, same_image=lambda a, b: False))
    assert rows["1.2.3"]["files"] == [f"/a/{k}" for k in range(4)] and rows["1.2.3"]["status"] == "ok"
    assert rows["1.2.3.no-geometry"]["files"] == ["/b/nopos"]
    [bad] = [r for r in rows.values() if r["files"] == ["/b/bad"]]
    assert bad["reason"] == "invalid image header: Rows is 0"


def test_copies_of_the_same_image_are_duplicates_and_other_geometry_conflicts():
    recs = [_rec(f"/a/{k}", 2.0 * k) for k in range(4)]
    recs.append(_rec("/b/anon", 0.0, sop_uid="1.2.3./a/0", patient_key="other"))  # other header, same image
    recs.append(_rec("/b/moved", 104.0, sop_uid="1.2.3./a/2"))  # same pixels, another position
    recs.append(_rec("/b/spacing", 6.0, sop_uid="1.2.3./a/3", pixel_spacing=[0.7, 0.7]))
    compared = []
    rows = _keys(group_series(recs, _classify, same_content=lambda a, b: False,
                              same_image=lambda a, b: compared.append((a, b)) or True))
    assert rows["1.2.3"]["files"] == ["/a/0", "/a/1"]  # kept: the copies in the series' own folder
    dup = rows["1.2.3.duplicates"]
    assert dup["files"] == ["/b/anon"] and q.category(dup["reason"]) == q.DUPLICATE
    assert "same pixels and geometry" in dup["reason"] and "byte-identical" not in dup["reason"]
    assert rows["1.2.3.conflicts"]["files"] == ["/a/2", "/a/3", "/b/moved", "/b/spacing"]
    assert compared == [("/a/0", "/b/anon")]  # pixels are compared only where the geometry agrees


def test_invalid_series_uids_get_surrogate_keys_and_never_share_one():
    bad = {"a/b": "characters other than digits", "a_b": "characters other than digits",
           "9" * 200: "200 characters", "1.2.03": "leading zero", "../../../../etc/passwd": "characters"}
    recs = [_rec(f"/x/{n}-{k}", 2.0 * k, uid=uid, sop_uid=f"7.{n}.{k}") for n, uid in enumerate(bad) for k in range(3)]
    rows = _keys(group_series(recs, _classify))
    assert len(rows) == len(bad) and all(r["status"] == "ok" and r["slices"] == 3 for r in rows.values())
    for n, (uid, words) in enumerate(bad.items()):
        [row] = [r for r in rows.values() if r["files"][0].startswith(f"/x/{n}-")]
        assert row["series_key"] == surrogate_series_uid([f"7.{n}.{k}" for k in range(3)], "/x")
        assert row["series_uid"] == "" and words in row["warnings"] and "surrogate series_key" in row["warnings"]
        assert repr(uid[:70] + ("..." if len(uid) > 70 else "")) in row["warnings"]


def test_invalid_study_frame_and_instance_uids_are_reported():
    recs = [_rec(f"/a/{k}", 2.0 * k, study_uid="1.02", frame_of_reference_uid="x", sop_uid=f"1.2.0{k}")
            for k in range(3)]
    warnings = _keys(group_series(recs, _classify))["1.2.3"]["warnings"]
    assert "StudyInstanceUID '1.02' is not a valid UID (a component with a leading zero)" in warnings
    assert "FrameOfReferenceUID 'x' is not a valid UID" in warnings
    assert "SOPInstanceUID '1.2.00' is not a valid UID (a component with a leading zero) (and 2 more)" in warnings
