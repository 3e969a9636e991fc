"""End-to-end conversion on a phantom archive (real catalog, reader, writers, models, Ray Data, MLflow)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk

from ctharmony.infer.pipeline import RESULT_COLUMNS, ConvertOptions, convert_archive

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def registered_harmonizer(model_paths) -> str:
    from ctharmony.loaders import load_model
    from ctharmony.tracking.models import log_model

    info = log_model(load_model(model_paths[0]), "harmonizer", registered_model_name="infer-test-harmonizer")
    return f"models:/infer-test-harmonizer/{info.registered_model_version}"


@pytest.fixture(scope="module")
def first_run(phantom_catalog, model_paths, registered_harmonizer, tmp_path_factory):
    """Convert the archive plus one broken series; the harmonizer comes from the MLflow registry."""
    catalog, frame = phantom_catalog
    root = tmp_path_factory.mktemp("convert")
    ok = frame[frame["status"] == "ok"]
    broken = ok.iloc[[0]].copy()
    truncated = root / "truncated.dcm"
    truncated.write_bytes(Path(broken.iloc[0]["files"][0]).read_bytes()[:300])
    broken["series_key"] = broken["series_uid"] = "broken-series"
    broken["files"] = [[str(truncated)]]
    with_broken = root / "catalog.parquet"
    pd.concat([frame, broken], ignore_index=True).to_parquet(with_broken, index=False)
    out = root / "out"
    results = convert_archive(with_broken, registered_harmonizer, model_paths[1], out,
                              options=ConvertOptions(batch_slices=4, progress_interval_s=0))
    return out, results, ok


def test_every_ok_series_is_converted_and_the_broken_one_recorded(first_run):
    out, results, ok = first_run
    assert list(results.columns) == RESULT_COLUMNS
    assert results["series_key"].is_unique
    done = results[results["status"] == "done"]
    assert set(done["series_key"]) == set(ok["series_key"])
    failed = results[results["status"] == "failed"]
    assert failed["series_key"].tolist() == ["broken-series"]
    assert failed["reason"].iloc[0].startswith("read:") and "truncated.dcm" in failed["reason"].iloc[0]
    assert (done["model_name"] == "ctharmony-harmonizer").all() and (done["model_version"] != "").all()
    assert (done["segmenter_name"] == "ctharmony-liver-unet").all()
    assert pd.read_parquet(out / "results.parquet")["series_key"].tolist() == results["series_key"].tolist()
    assert not any((out / ".staging").iterdir())  # nothing half written
    for row in done.itertuples():
        assert len(list(Path(row.output_dir).glob("*.dcm"))) == row.slices == 8
        for path in (row.seg_original_path, row.seg_harmonized_path, row.mask_original_path,
                     row.mask_harmonized_path):
            assert Path(path).is_file() and Path(path).parent == Path(row.output_dir).parent


def test_outputs_read_back_with_the_input_geometry(first_run, model_paths):
    from ctharmony.archive import read_seg, read_series
    from ctharmony.infer.predictors import HarmonizerPredictor

    out, results, ok = first_run
    row = results[(results["status"] == "done") & (results["protocol"] == "M40")].iloc[0]
    source_files = ok.set_index("series_key").loc[row["series_key"], "files"]
    source = read_series(list(source_files))

    def sitk_series(files):
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames([str(f) for f in files])
        return reader.Execute()

    written = sorted(Path(row["output_dir"]).glob("*.dcm"))
    original_image, harmonized_image = sitk_series(source_files), sitk_series(written)
    assert harmonized_image.GetSize() == original_image.GetSize()
    np.testing.assert_allclose(harmonized_image.GetOrigin(), original_image.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(harmonized_image.GetSpacing(), original_image.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(harmonized_image.GetDirection(), original_image.GetDirection(), atol=1e-6)
    # the written HU are the harmonizer's output for this series (stored as int16)
    expected = HarmonizerPredictor(model_paths[0]).predict(source.hu)
    np.testing.assert_allclose(sitk.GetArrayFromImage(harmonized_image), np.rint(expected), atol=1.0)

    first = pydicom.dcmread(written[0])
    assert "DERIVED" in first.ImageType and first.SeriesInstanceUID == row["output_series_uid"]
    assert first.StudyInstanceUID == row["study_uid"] and first.SeriesInstanceUID != row["series_uid"]
    masks = {name: np.load(row[f"mask_{name}_path"]) for name in ("original", "harmonized")}
    for mask in masks.values():
        assert mask["mask"].shape == source.shape and mask["mask"].dtype == np.uint8
        np.testing.assert_allclose(mask["spacing"], source.spacing)
    assert row["liver_volume_ml_original"] == pytest.approx(masks["original"]["mask"].sum() * source.voxel_volume_ml)

    seg = pydicom.dcmread(row["seg_original_path"])
    assert seg.Modality == "SEG"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == row["series_uid"]
    np.testing.assert_array_equal(read_seg(Path(row["seg_original_path"]), source), masks["original"]["mask"])
    harmonized = read_series([str(f) for f in written])
    assert pydicom.dcmread(row["seg_harmonized_path"]).ReferencedSeriesSequence[0].SeriesInstanceUID == \
        row["output_series_uid"]
    np.testing.assert_array_equal(read_seg(Path(row["seg_harmonized_path"]), harmonized),
                                  masks["harmonized"]["mask"])


def test_a_rerun_does_nothing_and_a_lost_series_is_redone_alone(first_run, model_paths, caplog):
    out, results, ok = first_run
    catalog = out.parent / "catalog.parquet"
    stamps = {p: p.stat().st_mtime_ns for p in (out / "series").rglob("*") if p.is_file()}
    caplog.set_level(logging.INFO, logger="ctharmony.infer")
    again = convert_archive(catalog, model_paths[0], model_paths[1], out)
    assert {p: p.stat().st_mtime_ns for p in (out / "series").rglob("*") if p.is_file()} == stamps
    assert f"{len(ok)} already converted, 1 to convert" in caplog.text  # only the broken one is retried
    assert again[again["status"] == "done"]["series_key"].tolist() == \
        results[results["status"] == "done"]["series_key"].tolist()

    # a crash mid-write leaves a staging folder (ignored, then removed); a deleted series is redone alone
    victim = results[results["status"] == "done"].iloc[0]
    series_dir = Path(victim["output_dir"]).parent
    os.rename(series_dir, out / ".staging" / "interrupted")
    caplog.clear()
    third = convert_archive(catalog, model_paths[0], model_paths[1], out)
    assert f"{len(ok) - 1} already converted, 2 to convert" in caplog.text
    assert not any((out / ".staging").iterdir())
    assert (third["status"] == "done").sum() == len(ok) and third["series_key"].is_unique
    redone = {p: p.stat().st_mtime_ns for p in (out / "series").rglob("*") if p.is_file()}
    changed = {p for p in redone if stamps.get(p) != redone[p]}
    assert changed and all(series_dir in p.parents for p in changed)
