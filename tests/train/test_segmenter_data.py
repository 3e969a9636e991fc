"""The segmenter's training mix: archives (phantom, re-simulated real) and original real images with masks."""

from pathlib import Path

import numpy as np
import pytest

from ctharmony.models.registry import load_spec
from ctharmony.train.data import TrainingDataError
from ctharmony.train.segmenter import evaluate_dice, fit_segmenter
from ctharmony.train.segmenter_data import (
    ArchiveSource,
    OriginalCase,
    SegmenterData,
    load_data_mix,
    mixed_pairs,
    original_pair,
)
from testkit.real_cases import REAL_DATA, require_real_data

TS = OriginalCase(REAL_DATA / "ts-example-ct", REAL_DATA / "ts-example-ct-liver.nii.gz")
DCMQI = OriginalCase(REAL_DATA / "dcmqi-ct-3slice", REAL_DATA / "dcmqi-ct-3slice-liver.nii.gz")


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mix.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_mix_errors_name_the_file_or_key(tmp_path, real_data):
    series = REAL_DATA / "ts-example-ct"
    path = _yaml(tmp_path, f"originals:\n  - {{series: {series}, mask: nope-liver.nii.gz}}\n")
    with pytest.raises(TrainingDataError, match=f"liver mask {tmp_path / 'nope-liver.nii.gz'}: no such file"):
        load_data_mix(path)  # relative to the YAML's folder
    with pytest.raises(TrainingDataError, match="unknown key.*orignals"):
        load_data_mix(_yaml(tmp_path, "orignals: []\n"))
    with pytest.raises(TrainingDataError, match="archives entry .*missing masks"):
        load_data_mix(_yaml(tmp_path, "archives:\n  - {catalog: c.parquet}\n"))
    with pytest.raises(TrainingDataError, match=f"archive catalog {tmp_path / 'c.parquet'}: no such file"):
        load_data_mix(_yaml(tmp_path, "archives:\n  - {catalog: c.parquet, masks: m}\n"))
    with pytest.raises(TrainingDataError, match="nothing to train on"):
        load_data_mix(_yaml(tmp_path, "size: 64\n"))
    with pytest.raises(TrainingDataError, match="mix.yaml: no such file"):
        load_data_mix(tmp_path / "none" / "mix.yaml")


def test_an_original_is_resampled_to_what_the_segmenter_sees(real_data):
    hu, mask = original_pair(TS, size=64, slices=4)
    assert hu.shape == mask.shape == (4, 64, 64) and hu.dtype == np.float32
    liver = hu[mask > 0]
    assert 0.02 < mask.mean() < 0.4 and 0.0 < float(np.median(liver)) < 120.0  # a liver, at its own HU
    assert hu[0, 0, 0] == pytest.approx(-1000.0, abs=50.0)  # air outside the trunk


def test_segmenter_trains_on_original_real_images(real_data):
    spec = load_spec("liver-unet", ["train.epochs_stage1=1", "train.patches_per_epoch=16", "train.patch_size=32"])
    data = SegmenterData(originals=(TS, DCMQI), size=64, slices=3)
    train, val = mixed_pairs(data, "M80", spec.train.val_fraction, spec.train.seed)
    assert len(train) == 2 and val == []  # real cases always train
    model = fit_segmenter(spec, train, val)
    assert 0.0 <= evaluate_dice(model, train) <= 1.0


@pytest.mark.slow
def test_archive_and_original_of_one_case_are_one_patient(tmp_path, real_data):
    """A re-simulated real archive (catalogued) plus the original: grouped by case, excluded together."""
    from ctharmony.simulate import simulate_archive
    from testkit.local_catalog import local_catalog

    require_real_data()
    out = tmp_path / "real"
    simulate_archive(out, patients=1, slices=2, size=64, seed=0, series=["M80"], anatomy="real",
                     real_cases=[(TS.series, TS.mask), (DCMQI.series, DCMQI.mask)])
    catalog = local_catalog(out / "dicom", tmp_path / "catalog.parquet")
    archive = ArchiveSource(catalog, out / "masks")
    data = SegmenterData(archives=(archive,), originals=(TS,), size=64, slices=2, split_real=True)
    train, val = mixed_pairs(data, "M80", 0.5, 0)
    assert len(train) + len(val) == 3 and len(val) in (1, 2)  # ts (archive + original) vs dcmqi: by case
    assert all(p[0].shape[-2:] == (64, 64) for p in train + val)
    held = SegmenterData(archives=(ArchiveSource(catalog, out / "masks", ("ts-example-ct",)),), size=64)
    train, val = mixed_pairs(held, "M80", 0.25, 0)
    assert len(train) == 1 and val == []  # only dcmqi's re-simulated M80 is left
    spec = load_spec("liver-unet", ["train.epochs_stage1=1", "train.patches_per_epoch=8", "train.patch_size=32"])
    assert np.isfinite(evaluate_dice(fit_segmenter(spec, train, val), train))


def test_train_segmenter_checks_its_mix_before_training(tmp_path):
    from typer.testing import CliRunner

    from ctharmony.archive.catalog import catalog_frame, write_catalog
    from ctharmony.cli import app

    catalog = write_catalog(catalog_frame([]), tmp_path / "catalog.parquet")
    (tmp_path / "masks").mkdir()
    mix = _yaml(tmp_path, "originals:\n  - {series: ., mask: gone-liver.nii.gz}\n")
    result = CliRunner().invoke(app, ["train-segmenter", "--catalog", str(catalog), "--masks",
                                      str(tmp_path / "masks"), "--data", str(mix), "--no-register"])
    assert result.exit_code == 2, result.output
    assert f"--data {mix}" in result.output and f"liver mask {tmp_path / 'gone-liver.nii.gz'}" in result.output
