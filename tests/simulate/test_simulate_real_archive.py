"""`simulate --anatomy real`: the real Siemens series re-simulated as augmented patients, read back from disk."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ctharmony.archive.reader import read_series
from ctharmony.cli import app
from ctharmony.evaluate import metrics
from ctharmony.simulate import simulate_archive
from ctharmony.simulate.real import load_real
from testkit.real_cases import SIEMENS, SIEMENS_LIVER, require_real_data

SERIES, MASK = SIEMENS, SIEMENS_LIVER
SLICES = 4


def _need_real_data() -> None:
    require_real_data()


@pytest.fixture(scope="module")
def source():
    """The source's central slices read independently of the simulator: HU, liver mask, z positions."""
    _need_real_data()
    volume = read_series(sorted(SERIES.iterdir()))
    liver = metrics.truth_on_grid(MASK, volume.hu.shape, volume.spacing, volume.origin, volume.direction)
    start = (volume.hu.shape[0] - SLICES) // 2
    pick = slice(start, start + SLICES)
    return {"liver_ml": float(liver[pick].sum()) * float(np.prod(volume.spacing)) / 1000.0,
            "z": volume.positions[pick, 2], "ids": {volume.tags.get("PatientID"), volume.tags.get("PatientName")}}


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    _need_real_data()
    out = tmp_path_factory.mktemp("real-sim")
    table = simulate_archive(out, patients=2, slices=SLICES, size=64, seed=1, series=["FBP", "M80"], anatomy="real",
                             real_series=SERIES, real_mask=MASK)
    return out, table


def _mask(path: Path) -> np.ndarray:
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


@pytest.mark.slow
def test_real_patients_are_augmented_scans_of_the_source(archive, source):
    out, table = archive
    assert list(table["site"]) == ["siemens-force", "ge-revolution"]
    masks = [_mask(out / p) for p in table["mask_path"]]
    assert all(m.shape == (SLICES, 64, 64) and m.sum() > 0 for m in masks)
    assert metrics.dice(masks[0], masks[1]) < 0.98  # patient 1 is warped / scaled, patient 0 the source as it is
    for (_, row), mask in zip(table.iterrows(), masks, strict=True):
        params = json.loads(row["params"])
        assert row["patient_id"].startswith("SIMULATED-REAL-") and row["patient_id"] not in source["ids"]
        folder = out / "dicom" / row["site"] / row["patient_id"]
        assert sorted(p.name for p in folder.iterdir()) == ["FBP", "M80"]  # only the series asked for
        m80 = read_series(sorted((folder / "M80").iterdir()))
        assert m80.hu.shape == (SLICES, 64, 64)
        assert np.allclose(m80.positions[:, 2], source["z"], atol=1e-3)  # the source's slice positions
        truth = np.load(out / "truth" / row["study_uid"] / "T80.npz")
        assert np.allclose(truth["positions"][:, 2], source["z"], atol=1e-3) and truth["hu"].shape == m80.hu.shape
        liver_m80 = float(np.median(m80.hu[mask.astype(bool)]))
        assert 60.0 <= liver_m80 <= 120.0, f"{row['patient_id']}: liver at M80 {liver_m80:.1f} HU"
        volume_ml = float(mask.sum()) * float(np.prod(m80.spacing)) / 1000.0
        assert volume_ml == pytest.approx(source["liver_ml"], rel=0.30)
        assert row["liver_volume_ml"] == pytest.approx(volume_ml, rel=1e-3)
        assert params["anatomy"] == "real" and params["series"] == ["FBP", "M80"]
    augments = [json.loads(p)["augment"] for p in table["params"]]
    assert augments[0]["elastic_mm"] == 0 and augments[1] != augments[0]


def test_real_source_is_the_trunk_with_its_liver():
    _need_real_data()
    src = load_real(SERIES, MASK, slices=99)  # more than there are: all 20
    assert src.hu.shape == (20, 512, 512) and src.liver.any()
    assert float(src.hu.min()) >= -1024 and (src.hu[:, :, :40] == -1000).all()  # the right arm (image left) is gone
    assert not (src.liver.astype(bool) & (src.hu == -1000)).any()  # the liver lies inside the kept trunk


def test_bad_real_inputs_name_the_file(tmp_path):
    with pytest.raises(ValueError, match=f"real series {tmp_path / 'none'}: not a folder"):
        load_real(tmp_path / "none", tmp_path / "m.nii.gz")
    (tmp_path / "empty").mkdir()
    (tmp_path / "m.nii.gz").write_bytes(b"not nifti")
    with pytest.raises(ValueError, match="real series .*empty"):
        load_real(tmp_path / "empty", tmp_path / "m.nii.gz")
    with pytest.raises(ValueError, match="anatomy 'real' needs real_mask"):
        simulate_archive(tmp_path / "x", anatomy="real", real_series=tmp_path)


@pytest.mark.slow
def test_cli_real_anatomy(tmp_path):
    _need_real_data()
    out = tmp_path / "sim"
    result = CliRunner().invoke(app, ["simulate", str(out), "--patients", "1", "--slices", "2", "--size", "32",
                                      "--anatomy", "real", "--real-series", str(SERIES), "--real-mask", str(MASK),
                                      "--series", "M40,M80"])
    assert result.exit_code == 0, result.output
    row = pd.read_parquet(out / "phantom.parquet").iloc[0]
    assert sorted(p.name for p in (out / "dicom" / "siemens-force" / row["patient_id"]).iterdir()) == ["M40", "M80"]
    missing = CliRunner().invoke(app, ["simulate", str(tmp_path / "y"), "--anatomy", "real"])
    assert missing.exit_code != 0 and "--real-series" in missing.output
