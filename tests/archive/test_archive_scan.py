"""Archive listing: regular files only; links and special files are quarantined, never followed."""

from __future__ import annotations

import pytest

from ctharmony.archive.scan import chunks, list_archive


def test_listing_separates_unsafe_paths(messy_archive):
    listing = list_archive(messy_archive["root"])
    unsafe = dict(listing.unsafe)
    for path in messy_archive["quarantine"]["unsafe"]:
        assert str(path) in unsafe
        assert str(path) not in listing.files
    assert "outside the archive" in unsafe[str(messy_archive["root"] / "site-a" / "escape.dcm")]
    assert "broken" in unsafe[str(messy_archive["root"] / "site-a" / "broken.dcm")]
    assert str(messy_archive["ok"]["fbp"][0]) in listing.files
    assert listing.files == sorted(listing.files)
    assert listing.site_of(str(messy_archive["ok"]["fbp"][0])) == "site-a"


def test_link_inside_archive_is_not_followed(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.dcm").write_bytes(b"x")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    listing = list_archive(tmp_path)
    assert listing.files == [str(tmp_path.resolve() / "a" / "x.dcm")]
    assert "inside the archive" in dict(listing.unsafe)[str(tmp_path.resolve() / "b")]


def test_missing_archive_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        list_archive(tmp_path / "nope")


def test_chunks():
    assert chunks(["a", "b", "c"], 2) == [["a", "b"], ["c"]]


def test_undecodable_file_name_is_set_aside(tmp_path):
    (tmp_path / "ok.dcm").write_bytes(b"x")
    with open(bytes(tmp_path) + b"/bad\xff.dcm", "wb") as fh:
        fh.write(b"x")
    listing = list_archive(tmp_path)
    assert listing.files == [str(tmp_path.resolve() / "ok.dcm")]
    [(shown, why)] = listing.unsafe
    assert shown.endswith("bad\\xff.dcm") and "UTF-8" in why
    shown.encode("utf-8")  # storable in Parquet
