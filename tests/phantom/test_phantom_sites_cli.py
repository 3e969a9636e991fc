"""Sites are deterministic and heterogeneous; the `ctharmony phantom` command writes an archive."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from ctharmony.cli import app
from ctharmony.scanmodel.sites import make_sites


def test_sites_differ_and_are_deterministic():
    sites = make_sites(6, seed=1)
    assert sites == make_sites(6, seed=1)
    assert len({s.name for s in sites}) == 6
    first4 = sites[:4]
    for field in ("model", "kernel", "fov_mm", "slice_thickness_mm", "fbp_noise_hu"):
        assert len({getattr(s, field) for s in first4}) > 1, field
    assert len({s.manufacturer for s in first4}) > 1
    assert all(12.0 <= s.fbp_noise_hu <= 16.0 for s in sites)
    with pytest.raises(ValueError, match="sites must be >= 1"):
        make_sites(0)


def test_cli_phantom_writes_the_archive(tmp_path):
    result = CliRunner().invoke(app, ["phantom", str(tmp_path / "arch"), "--patients", "2", "--slices", "3",
                                      "--size", "32", "--sites", "2", "--seed", "4", "--preview"])
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(tmp_path / "arch" / "phantom.parquet")
    assert len(table) == 2 and table.site.nunique() == 2
    assert len(list((tmp_path / "arch" / "dicom").rglob("*.dcm"))) == 2 * 6 * 3
    assert (tmp_path / "arch" / "preview.png").is_file()
    assert "phantom" in CliRunner().invoke(app, ["--help"]).output
