"""Predictors on plain batches (no Ray): real HUModels from ctharmony.models, loaded once per instance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ctharmony.infer.model_source import resolve_model_source
from ctharmony.infer.predictors import HarmonizerPredictor, SegmenterPredictor
from ctharmony.infer.tiling import predict_slices, select_device, tile_starts
from ctharmony.loaders import ModelLoadError
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
    with pytest.raises(ModelLoadError, match="no such file"):
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


# --- canonical in-plane orientation (issue 11) ------------------------------------------------------------

class _LeftAnteriorTissue(torch.nn.Module):
    """A deterministic "segmenter" that is NOT rotation invariant: soft tissue, but only in the image's
    left 55 % and top 75 % (where the liver lies in the canonical display)."""

    info = {"name": "left-anterior-tissue", "version": "1"}

    def forward(self, x):
        height, width = x.shape[-2:]
        rows = torch.arange(height, device=x.device)[:, None] < 0.75 * height
        columns = torch.arange(width, device=x.device)[None, :] < 0.55 * width
        return (((x > 0) & (x < 200)) & rows & columns).float()


class _Ramps(torch.nn.Module):
    """A deterministic "harmonizer" that adds ramps along the image's rows and columns (position dependent)."""

    info = {"name": "ramps", "version": "1"}

    def forward(self, x):
        height, width = x.shape[-2:]
        return x + _ramps(height, width, torch.linspace)


def _ramps(height, width, linspace):
    return linspace(0.0, 100.0, width)[None, :] + linspace(0.0, 30.0, height)[:, None]


def test_harmonizer_sees_canonical_slices_and_returns_the_stored_layout():
    from ctharmony.archive.orientation import SYMMETRIES, canonical_transform

    canonical = np.random.default_rng(3).normal(50, 30, (2, 6, 9)).astype(np.float32)
    expected = canonical + _ramps(6, 9, np.linspace).astype(np.float32)  # the model on canonical slices
    predictor = HarmonizerPredictor(_Ramps(), device="cpu")
    for stored_as in SYMMETRIES:
        direction = stored_as.direction(np.eye(3))
        stored = stored_as.apply(canonical)
        batch = _batch(stored)
        batch["direction"] = direction.reshape(1, 9)
        out = predictor(batch)["hu_harmonized"][0]
        assert out.shape == stored.shape  # the stored layout, voxel for voxel
        np.testing.assert_allclose(canonical_transform(direction).apply(out), expected, atol=1e-4)
        if not stored_as.is_identity:  # without the direction the network would see another image
            plain = predictor(_batch(stored))["hu_harmonized"][0]
            assert np.abs(canonical_transform(direction).apply(plain) - expected).max() > 10.0


def _variant_files(volume, stored_as, folder):
    """Write ``volume`` stored with the in-plane layout ``stored_as`` as a real DICOM series (same physical image)."""
    from pydicom.uid import generate_uid

    from ctharmony.archive.orientation import transform_volume
    from testkit.synthetic_ct import ct_slice_dataset

    variant = transform_volume(volume, stored_as)
    folder.mkdir(parents=True)
    uids = {"series_uid": generate_uid(), "study_uid": "1.2.826.0.1.3680043.10.1", "frame_uid": "1.2.826.0.1.9"}
    orientation = [*variant.direction[:, 0], *variant.direction[:, 1]]
    files = []
    for k in range(variant.shape[0]):
        pixels = np.round(variant.hu[k]).astype(np.int16)
        ds = ct_slice_dataset(pixels, position=variant.positions[k], orientation=orientation,
                              pixel_spacing=variant.spacing[1:], instance=k + 1, intercept=0.0, **uids)
        ds.save_as(folder / f"{k:03d}.dcm", enforce_file_format=True)
        files.append(str(folder / f"{k:03d}.dcm"))
    return files


def _on_grid(image, reference):
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(sitk.Resample(image, reference, sitk.Transform(), sitk.sitkNearestNeighbor))


def test_the_same_ct_in_any_of_the_8_stored_layouts_gets_the_same_masks(real_data, tmp_path):
    """The issue's criterion on the real abdominal CT: Dice >= 0.99 between the masks of any two stored
    layouts, compared in physical space; without canonical slices the same segmenter disagrees."""
    import SimpleITK as sitk

    from ctharmony.archive import Volume, read_series
    from ctharmony.archive.orientation import SYMMETRIES
    from ctharmony.evaluate.metrics import dice
    from ctharmony.infer.pipeline import read_catalog_row
    from ctharmony.infer.writer import volume_of

    real = read_series(sorted((real_data / "siemens-abdomen-ct").iterdir()))
    rows, columns = slice(96, 416), slice(16, 496)  # 320 x 480: a transposed layout changes the shape
    shift = real.direction[:, 0] * columns.start * real.spacing[2] + real.direction[:, 1] * rows.start * real.spacing[1]
    ct = Volume(real.hu[8:12, rows, columns], real.spacing, direction=real.direction,
                positions=real.positions[8:12] + shift)
    predictor = SegmenterPredictor(_LeftAnteriorTissue(), device="cpu")
    reference = None
    masks, plain_masks = {}, {}
    for n, stored_as in enumerate(SYMMETRIES):
        files = _variant_files(ct, stored_as, tmp_path / f"variant{n}")
        reader = sitk.ImageSeriesReader()  # independent reader: the variant is the same image in space
        reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(tmp_path / f"variant{n}")))
        image = reader.Execute()
        reference = reference or image
        np.testing.assert_array_equal(_on_grid(image, reference), sitk.GetArrayFromImage(reference))
        row = read_catalog_row({"series_key": f"v{n}", "series_uid": "", "study_uid": "", "patient_key": "",
                                "site": "", "protocol": "M80", "files": list(files)})
        assert row["status"] == "ok", row["reason"]
        batch = {key: np.asarray([value]) if np.ndim(value) else np.asarray([value], dtype=object)
                 for key, value in row.items()}
        batch["hu"] = row["hu"][None]
        batch["direction"] = row["direction"][None]
        mask = predictor(batch)["mask_original"][0]
        assert mask.shape == row["hu"].shape and mask.any()
        masks[stored_as] = _on_grid(volume_of(row, mask).to_sitk(), reference)
        del batch["direction"]  # the same segmenter on the stored layout, as before issue 11
        plain = predictor(batch)["mask_original"][0]
        plain_masks[stored_as] = _on_grid(volume_of(row, plain).to_sitk(), reference)
    pairs = [(a, b) for a in SYMMETRIES for b in SYMMETRIES if a != b]
    assert min(dice(masks[a], masks[b]) for a, b in pairs) >= 0.99
    base = plain_masks[SYMMETRIES[0]]  # the identity layout: canonical already
    np.testing.assert_array_equal(masks[SYMMETRIES[0]], base)
    assert all(dice(plain_masks[s], base) < 0.9 for s in SYMMETRIES[1:])
