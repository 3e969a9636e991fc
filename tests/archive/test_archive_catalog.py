"""build_catalog on a messy archive (embedded Ray): every file in exactly one row, reasons, schema, CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ctharmony.archive import quarantine as q
from ctharmony.archive.catalog import build_catalog, read_catalog, summarize

EXPECTED_REASON = {
    "not_dicom": q.NOT_DICOM,
    "truncated": q.TRUNCATED,
    "no_pixels": q.NO_PIXELS,
    "undecodable": q.UNDECODABLE,
    "mr": q.NOT_CT,
    "scout": q.LOCALIZER,
    "split_single": q.LOCALIZER,
    "single": q.LOCALIZER,
    "duplicate_positions": q.INCONSISTENT_GEOMETRY,
    "unsafe": q.UNSAFE_PATH,
}
_CACHE: dict = {}


@pytest.fixture
def messy_catalog(ray_local, messy_archive, tmp_path_factory):
    """The messy archive catalogued once (small chunks, so several Ray tasks share the work)."""
    if "df" not in _CACHE:
        out = tmp_path_factory.mktemp("catalog") / "catalog.parquet"
        _CACHE["df"] = build_catalog(messy_archive["root"], out, chunk_size=8, progress=False)
        _CACHE["out"] = out
    return _CACHE["df"], _CACHE["out"]


def _all_paths(root: Path) -> list[str]:
    """Every entry under root that is not a real folder (files, links, FIFOs), without following links."""
    found = []
    for folder, dirs, files in os.walk(os.path.realpath(root)):
        found += [os.path.join(folder, name) for name in files]
        found += [os.path.join(folder, name) for name in dirs if os.path.islink(os.path.join(folder, name))]
    return sorted(found)


def test_every_file_in_exactly_one_row(messy_archive, messy_catalog):
    df, _ = messy_catalog
    listed = [f for files in df["files"] for f in files]
    assert sorted(listed) == _all_paths(messy_archive["root"])
    assert len(listed) == len(set(listed))
    assert df["series_key"].is_unique


def test_series_rows(messy_archive, messy_catalog):
    df, _ = messy_catalog
    ok = df[df["status"] == "ok"].set_index("series_key")
    assert set(ok.index) == {f"1.2.826.0.1.{k}" for k in (1, 2, 3, 4, 5, 6)}
    fbp = ok.loc["1.2.826.0.1.1"]
    assert list(fbp["files"]) == [str(p) for p in messy_archive["ok"]["fbp"]]  # sorted along the normal
    assert (fbp["slices"], fbp["rows"], fbp["columns"], fbp["protocol"]) == (4, 16, 16, "FBP")
    assert list(fbp["spacing"]) == [2.0, 0.8, 0.8] and fbp["slice_thickness"] == 1.0
    assert fbp["bytes"] == sum(p.stat().st_size for p in messy_archive["ok"]["fbp"])
    assert (fbp["site"], fbp["kvp"], fbp["kernel"], fbp["reason"]) == ("site-a", 120.0, "Br40", "")
    assert ok.loc["1.2.826.0.1.2", "protocol"] == "IR" and ok.loc["1.2.826.0.1.3", "protocol"] == "M40"
    assert ok.loc["1.2.826.0.1.3", "protocol_rule"] == "monoenergetic-40kev"
    assert ok.loc["1.2.826.0.1.3", "site"] == "Hospital B"  # InstitutionName first, else the top folder
    assert ok.loc["1.2.826.0.1.4", "slices"] == 3  # the coronal slice and the scout were split off
    assert "gantry tilt" in ok.loc["1.2.826.0.1.5", "warnings"]
    assert "gap" in ok.loc["1.2.826.0.1.6", "warnings"] and ok.loc["1.2.826.0.1.6", "spacing"][0] == 2.0


def test_quarantine_reasons(messy_archive, messy_catalog):
    df, _ = messy_catalog
    reason_of = {f: r for files, r in zip(df["files"], df["reason"], strict=True) for f in files}
    status_of = {f: s for files, s in zip(df["files"], df["status"], strict=True) for f in files}
    for case, category in EXPECTED_REASON.items():
        for path in messy_archive["quarantine"][case]:
            path = os.path.join(os.path.realpath(path.parent), path.name)
            assert status_of[path] == "quarantined", case
            assert q.category(reason_of[path]) == category, (case, reason_of[path])
    mr = df[df["series_key"] == "1.2.826.0.1.9"]
    assert len(mr) == 1 and mr.iloc[0]["slices"] == 2  # one row for the MR series, not one per file
    assert set(df[df["series_key"].str.startswith("1.2.826.0.1.4")]["series_key"]) == {
        "1.2.826.0.1.4", "1.2.826.0.1.4.2", "1.2.826.0.1.4.3"}


def test_parquet_schema_and_no_phi(messy_catalog):
    df, out = messy_catalog
    schema = pq.read_schema(out)
    assert schema.names == list(q.CATALOG_COLUMNS)
    assert str(schema.field("spacing").type) == "list<element: double>"
    assert str(schema.field("files").type) == "list<element: string>"
    back = read_catalog(out).frame
    assert back["series_key"].tolist() == df["series_key"].tolist()
    assert b"SYNTH-0001" not in out.read_bytes() and b"SYNTH^PATIENT" not in out.read_bytes()
    assert df["patient_key"].str.len().max() == 24
    text = summarize(df)
    assert "6 series ok" in text and "truncated file 1" in text and "unsafe path" in text
    assert df.attrs["node_ids"] and df.attrs["files"] == len(_all_paths(Path(df["files"][0][0]).parents[3]))


def test_cli_catalog_with_rules(ray_local, messy_archive, tmp_path):
    from typer.testing import CliRunner

    from ctharmony.cli import app

    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - name: our-m40-is-m60\n    protocol: M60\n    match: {text: 'mono\\+ 40'}\n", encoding="utf-8"
    )
    out = tmp_path / "c.parquet"
    result = CliRunner().invoke(app, ["catalog", str(messy_archive["root"]), "--out", str(out), "--rules", str(rules)])
    assert result.exit_code == 0, result.output
    assert "series ok" in result.output and "quarantined:" in result.output
    df = read_catalog(out).frame.set_index("series_key")
    assert df.loc["1.2.826.0.1.3", "protocol"] == "M60"
    assert df.loc["1.2.826.0.1.3", "protocol_rule"] == "our-m40-is-m60"
    bad = CliRunner().invoke(app, ["catalog", str(tmp_path / "missing"), "--out", str(out)])
    assert bad.exit_code != 0
