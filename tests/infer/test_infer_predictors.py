"""Predictors on plain batches (no Ray): real HUModels from ctharmony.models, loaded once per instance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ctharmony.infer.model_source import ModelSourceError, resolve_model_source
from ctharmony.infer.predictors import HarmonizerPredictor, SegmenterPredictor
from ctharmony.infer.tiling import predict_slices, select_device, tile_starts
from ctharmony.models import build
from ctharmony.models.io import save_model


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("models")
    return save_model(build("cpu-small"), root / "harmonizer"), save_model(build("liver-unet"), root / "seg")


def _batch(*volumes):
    hu = np.empty(len(volumes), dtype=object)
    for i, v in enumerate(volumes):
        hu[i] = v
    if len({v.shape for v in volumes}) == 1:
        hu = np.stack(volumes)
    return {"series_key": np.array([f"s{i}" for i in range(len(volumes))]), "hu": hu,
            "status": np.array(["ok"] * len(volumes), dtype=object),
            "reason": np.array([""] * len(volumes), dtype=object)}


def test_harmonizer_maps_a_batch_with_the_saved_model(saved_models):
    predictor = HarmonizerPredictor(str(saved_models[0]), batch_slices=3)
    reference = predictor.model
    volume = np.random.default_rng(0).normal(60, 40, (5, 36, 40)).astype(np.float32)  # not a multiple of 4
    out = predictor(_batch(volume))
    assert out["hu_harmonized"].shape == (1, 5, 36, 40) and out["hu_harmonized"].dtype == np.float32
    assert np.isfinite(out["hu_harmonized"]).all()
    assert out["status"].tolist() == ["ok"] and out["model_name"][0] == "ctharmony-harmonizer"
    with torch.no_grad():  # the same as the HUModel called directly on the whole stack
        direct = reference(torch.from_numpy(volume[:, None]))[:, 0].numpy()
    np.testing.assert_allclose(out["hu_harmonized"][0], direct, atol=1e-3)
    predictor(_batch(volume))
    assert predictor.model is reference  # loaded once, in __init__
    assert out["seconds_harmonize"][0] > 0


def test_segmenter_masks_original_and_harmonized(saved_models):
    predictor = SegmenterPredictor(str(saved_models[1]), threshold=0.5)
    volume = np.full((4, 32, 32), 60.0, np.float32)
    batch = _batch(volume)
    batch["hu_harmonized"] = np.stack([volume + 10])
    out = predictor(batch)
    assert out["mask_original"].shape == (1, 4, 32, 32) and out["mask_original"].dtype == np.uint8
    assert out["mask_harmonized"].shape == (1, 4, 32, 32)
    assert set(np.unique(out["mask_original"])) <= {0, 1}
    with torch.no_grad():
        prob = predictor.model(torch.from_numpy(volume[:, None]))[:, 0].numpy()
    np.testing.assert_array_equal(out["mask_original"][0], (prob >= 0.5).astype(np.uint8))
    assert out["segmenter_name"][0] == "ctharmony-liver-unet"


def test_one_bad_row_fails_alone_and_failed_rows_pass_through(saved_models):
    predictor = HarmonizerPredictor(str(saved_models[0]))
    good = np.zeros((2, 16, 16), np.float32)
    bad = np.zeros((16, 16), np.float32)  # not a volume
    batch = _batch(good, bad, good)
    batch["status"][2] = "failed"
    batch["reason"][2] = "read: truncated file x.dcm"
    out = predictor(batch)
    assert out["status"].tolist() == ["ok", "failed", "failed"]
    assert out["reason"][1].startswith("harmonize: ValueError")
    assert out["reason"][2] == "read: truncated file x.dcm"
    assert out["hu_harmonized"][0].shape == (2, 16, 16) and out["hu_harmonized"][2].size == 0


def test_tiling_matches_the_whole_slice_for_a_local_network():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 1, 3, padding=1))
    volume = np.random.default_rng(1).normal(size=(3, 70, 53)).astype(np.float32)
    whole = predict_slices(net, volume, batch_slices=2)
    tiled = predict_slices(net, volume, batch_slices=2, tile=24, overlap=4)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    assert tile_starts(70, 24, 4)[-1] == 46 and tile_starts(20, 24, 4) == [0]
    with pytest.raises(ValueError, match="twice the overlap"):
        tile_starts(70, 8, 4)


def test_device_and_model_source_checks(tmp_path):
    assert select_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_model_source("models:/ctharmony-harmonizer@champion").is_mlflow
    with pytest.raises(ModelSourceError, match="no such file"):
        resolve_model_source(tmp_path / "missing-model")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_is_chosen_and_mixed_precision_stays_close_to_fp32(saved_models):
    volume = np.random.default_rng(2).normal(60, 80, (6, 96, 80)).astype(np.float32)
    amp = HarmonizerPredictor(str(saved_models[0]), batch_slices=4)
    assert amp.device.type == "cuda" and amp.amp  # GPU by default, mixed precision on
    fp32 = HarmonizerPredictor(str(saved_models[0]), amp=False)
    cpu = HarmonizerPredictor(str(saved_models[0]), device="cpu")
    out_amp, out_fp32, out_cpu = (p.predict(volume) for p in (amp, fp32, cpu))
    assert np.abs(out_fp32 - out_cpu).max() < 5.0  # HU (TF32 convolutions)
    assert np.abs(out_amp - out_fp32).max() < 20.0 and np.abs(out_amp - out_fp32).mean() < 2.0
    seg_amp = SegmenterPredictor(str(saved_models[1]))
    seg_cpu = SegmenterPredictor(str(saved_models[1]), device="cpu")
    batch = _batch(volume)
    agree = (seg_amp(batch)["mask_original"] == seg_cpu(batch)["mask_original"]).mean()
    assert agree > 0.99
