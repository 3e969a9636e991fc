"""`simulate --anatomy real` with several real cases: patients per case, their masks and their origins."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ctharmony.cli import app
from ctharmony.simulate import simulate_archive
from ctharmony.simulate.real_cases import check_cases, origins
from testkit.real_cases import REAL_DATA, require_real_data

TS = (REAL_DATA / "ts-example-ct", REAL_DATA / "ts-example-ct-liver.nii.gz")
DCMQI = (REAL_DATA / "dcmqi-ct-3slice", REAL_DATA / "dcmqi-ct-3slice-liver.nii.gz")


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    require_real_data()
    out = tmp_path_factory.mktemp("real-cases")
    table = simulate_archive(out, patients=2, slices=2, size=64, seed=3, series=["M80"], anatomy="real",
                             real_cases=[TS, DCMQI])
    return out, table


def _mask(path: Path) -> np.ndarray:
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


@pytest.mark.slow
def test_each_real_case_gives_its_patients_with_masks_and_origin(archive):
    out, table = archive
    assert list(table["real_case"]) == ["ts-example-ct"] * 2 + ["dcmqi-ct-3slice"] * 2
    assert list(table["real_copy"]) == [0, 1, 0, 1]
    assert table["patient_id"].is_unique and table["study_uid"].is_unique
    assert list(table["site"]) == ["siemens-force", "ge-revolution"] * 2  # copy j at site j % 2
    on_disk = pd.read_parquet(out / "phantom.parquet")
    assert origins(on_disk) == dict(zip(table["study_uid"], table["real_case"], strict=True))
    for _, row in table.iterrows():
        mask = _mask(out / row["mask_path"])
        assert mask.shape == (2, 64, 64) and mask.sum() > 0
        assert (out / "dicom" / row["site"] / row["patient_id"] / "M80").is_dir()
        params = json.loads(row["params"])
        assert params["real_case"] == row["real_case"]
        assert (params["augment"]["elastic_mm"] == 0) == (row["real_copy"] == 0)  # copy 0: the case as it is
    # the two cases differ in anatomy: their liver volumes are not the same
    first = table.groupby("real_case")["liver_volume_ml"].first()
    assert first["ts-example-ct"] != pytest.approx(first["dcmqi-ct-3slice"], rel=0.05)


def test_a_missing_mask_is_named_before_anything_is_written(tmp_path, real_data):
    missing = tmp_path / "none-liver.nii.gz"
    with pytest.raises(ValueError, match=f"real liver mask {missing}: no such file"):
        simulate_archive(tmp_path / "out", anatomy="real", real_cases=[TS, (DCMQI[0], missing)])
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="share the name ts-example-ct"):
        check_cases([TS, TS])


def _error(result) -> str:
    """The usage error's text on one line (the box and its wrapping removed)."""
    assert result.exit_code == 2, result.output
    return " ".join(re.sub("[│╭╮╰╯─]", " ", result.output).split())


def test_cli_pairs_series_and_masks(tmp_path, real_data):
    result = CliRunner().invoke(app, ["simulate", str(tmp_path / "o"), "--anatomy", "real", "--real-series",
                                      str(TS[0]), "--real-mask", str(TS[1]), "--real-series", str(DCMQI[0])])
    assert "one --real-mask per --real-series (2 series, 1 masks)" in _error(result)
    result = CliRunner().invoke(app, ["simulate", str(tmp_path / "o"), "--real-series", str(TS[0]),
                                      "--real-mask", str(TS[1])])
    assert "--real-series needs --anatomy real" in _error(result)
    assert not (tmp_path / "o").exists()


def test_real_cases_from_a_catalog_and_its_masks(tmp_path, real_data):
    """Each study of a catalogued real archive with ``<masks>/<StudyInstanceUID>.nii.gz`` is one case."""
    import shutil

    from ctharmony.archive import read_catalog
    from ctharmony.simulate.real_cases import cases_from_catalog
    from testkit.local_catalog import local_catalog

    catalog = local_catalog(REAL_DATA, tmp_path / "catalog.parquet")
    study = {Path(r.files[0]).parent.name: r.study_uid for r in read_catalog(catalog).series()}
    masks = tmp_path / "masks"
    masks.mkdir()
    for series, mask in (TS, DCMQI):
        shutil.copy(mask, masks / f"{study[series.name]}.nii.gz")
    cases = cases_from_catalog(catalog, masks)
    assert sorted((s.name, m.name) for s, m in cases) == sorted(
        (s.name, f"{study[s.name]}.nii.gz") for s, _ in (TS, DCMQI))  # the Siemens study has no mask here
    with pytest.raises(ValueError, match="no ok series whose study has a mask"):
        cases_from_catalog(catalog, tmp_path)
    result = CliRunner().invoke(app, ["simulate", str(tmp_path / "o"), "--anatomy", "real", "--real-catalog",
                                      str(catalog)])
    assert "--real-catalog and --real-masks go together" in _error(result)
