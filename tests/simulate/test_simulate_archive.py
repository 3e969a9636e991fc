"""`ctharmony simulate` writes the phantom archive layout: DICOM read back, masks, truth, Parquet index."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ctharmony.archive.reader import read_series
from ctharmony.cli import app


@pytest.mark.slow
def test_cli_writes_a_readable_archive(tmp_path):
    out = tmp_path / "sim"
    result = CliRunner().invoke(app, ["simulate", str(out), "--patients", "2", "--slices", "2", "--size", "64",
                                      "--sites", "siemens-force,ge-revolution", "--seed", "4"])
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(out / "phantom.parquet")
    assert list(table["site"]) == ["siemens-force", "ge-revolution"]
    row = table.iloc[1]
    params = json.loads(row["params"])
    series = out / "dicom" / "ge-revolution" / row["patient_id"]
    assert sorted(p.name for p in series.iterdir()) == sorted(params["series"])
    m40 = read_series(sorted((series / "M40").iterdir()))
    m80 = read_series(sorted((series / "M80").iterdir()))
    assert m80.hu.shape == (2, 64, 64)
    assert m80.tags.get("SeriesInstanceUID", row["series_uid_M80"]) == row["series_uid_M80"]
    truth = np.load(out / "truth" / row["study_uid"] / "T80.npz")["hu"]
    assert truth.shape == (2, 64, 64)
    liver = params["liver_hu_measured"]
    assert liver["M40"] > liver["M60"] > liver["M80"] > 40  # iodine contrast falls with energy
    assert float(np.abs(m80.hu - truth)[truth > -500].mean()) < 60  # the written M80 is the simulated scan
    assert float(m40.hu.std()) > 0
    assert (out / row["mask_path"]).is_file()


def test_cli_rejects_an_unknown_site(tmp_path):
    result = CliRunner().invoke(app, ["simulate", str(tmp_path / "x"), "--sites", "nowhere"])
    assert result.exit_code != 0
    assert "unknown site 'nowhere'" in result.output
