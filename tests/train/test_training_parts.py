from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ctharmony.archive import SeriesRow
from ctharmony.config import IntensitySpec, ModelSpec
from ctharmony.models.hu_model import HUModel
from ctharmony.models.registry import load_spec
from ctharmony.train.data import (
    PairedPatchSampler,
    PairedStudy,
    TrainingDataError,
    pad_to_workers,
    split_by_patient,
    study_files,
    study_key,
    study_records,
)
from ctharmony.train.ema import ModelEMA
from ctharmony.train.loop import epoch_lr
from ctharmony.train.validate import metrics_from_sums, slice_indices, validation_sums


def _catalog() -> list[SeriesRow]:
    rows = []
    for patient in range(5):
        for protocol in ("M40", "M80", "FBP"):
            rows.append({"study_uid": f"1.2.{patient}", "patient_key": f"pk{patient}", "protocol": protocol,
                         "files": [f"/a/{patient}/{protocol}/{i}.dcm" for i in range(3)], "slices": 3,
                         "status": "ok"})
    rows.append({"study_uid": "1.2.9", "patient_key": "pk9", "protocol": "M40", "files": ["/x"], "slices": 1,
                 "status": "ok"})  # no M80: not usable
    rows.append({"study_uid": "1.2.0", "patient_key": "pk0", "protocol": "IR", "files": ["/q"], "slices": 1,
                 "status": "quarantined"})
    return [SeriesRow.from_record({"series_key": f"s{i}", **row}) for i, row in enumerate(rows)]


def test_study_records_and_patient_split_are_deterministic() -> None:
    records = study_records(_catalog(), ("FBP", "IR", "M40", "M80"))
    assert len(records) == 5
    files = study_files(records[0])
    assert set(files) == {"FBP", "M40", "M80"}  # quarantined IR left out
    assert files["M40"] == [f"/a/0/M40/{i}.dcm" for i in range(3)]  # a real list, in catalog order
    assert json.loads(study_key(records[0])) == files
    train, val = split_by_patient(records, 0.4, seed=0)
    assert len(val) == 2 and len(train) == 3
    assert not {r["patient_key"] for r in train} & {r["patient_key"] for r in val}
    assert split_by_patient(records, 0.4, seed=0) == (train, val)
    assert split_by_patient(records, 0.4, seed=1) != (train, val)
    with pytest.raises(TrainingDataError, match="at least 2 patients"):
        split_by_patient(records[:1], 0.5)
    with pytest.raises(TrainingDataError, match="no study"):
        study_records([r for r in _catalog() if r.protocol != "M80"], ("M40",))


def test_pad_to_workers_never_drops_a_study() -> None:
    recs = [{"i": i} for i in range(3)]
    assert pad_to_workers(recs, 2) == [{"i": 0}, {"i": 1}, {"i": 2}, {"i": 0}]
    assert pad_to_workers(recs[:1], 2) == [{"i": 0}, {"i": 0}]


def test_paired_patches_come_from_the_same_location() -> None:
    base = np.arange(4 * 20 * 20, dtype=np.float32).reshape(4, 20, 20)
    study = {"M80": base, "M40": base + 1000.0}
    sampler = PairedPatchSampler([study], 8, "M80", np.random.default_rng(0))
    x, y, names = sampler.sample(16)
    assert x.shape == y.shape == (16, 1, 8, 8)
    for xi, yi, name in zip(x, y, names, strict=True):
        assert np.array_equal(xi - (1000.0 if name == "M40" else 0.0), yi)
    assert set(names) == {"M40", "M80"}


def test_ema_and_lr_schedule() -> None:
    net = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(net.weight)
    ema = ModelEMA(net, decay=0.5)
    torch.nn.init.ones_(net.weight)
    ema.update(net)
    assert float(ema.module.weight) == pytest.approx(0.5)
    spec = load_spec("cpu-small", ["train.epochs_stage1=4", "train.epochs_stage2=2", "optim.lr=1.0",
                                   "optim.lr_stage2=null"])
    lrs = [epoch_lr(spec, e) for e in range(6)]
    assert lrs == pytest.approx([1.0, 1.0, 0.95, 0.95**2, 1.0, 0.95])  # decay after half of each stage
    spec = load_spec("cpu-small", ["train.epochs_stage1=2", "train.epochs_stage2=2", "optim.lr=1.0",
                                   "optim.lr_stage2=0.1"])
    assert [epoch_lr(spec, e) for e in range(4)] == pytest.approx([1.0, 0.95, 0.1, 0.095])


class Shift(torch.nn.Module):
    """A toy harmonizer that subtracts 100 HU: converts ``M40 = M80 + 100`` exactly, noise untouched."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - 100.0 / 3072.0


def _validate_shift(study: dict[str, np.ndarray], protocols: tuple[str, ...], slices: int) -> dict[str, float]:
    """Validation metrics of :class:`Shift` on one study, its slices split over two ranks and summed."""
    spec = ModelSpec(name="t", intensity=IntensitySpec(-1024.0, 2048.0))
    sums = [validation_sums(HUModel(Shift(), spec), None, [study], protocols, "M80", slices, rank, 2)
            for rank in range(2)]
    return metrics_from_sums(sums[0] + sums[1], protocols, 3072.0, with_dice=False)


def test_validation_metrics_on_a_known_model() -> None:
    m80 = np.random.default_rng(0).normal(0, 10, (6, 16, 16)).astype(np.float32)
    metrics = _validate_shift({"M80": m80, "M40": m80 + 100.0}, ("M40", "M80"), 4)
    assert metrics["val/mae_hu_raw/M40"] == pytest.approx(100.0, abs=1e-3)
    assert metrics["val/mae_hu/M40"] == pytest.approx(0.0, abs=1e-2)
    assert metrics["val/mae_hu/M80"] == pytest.approx(100.0, abs=1e-2)
    assert metrics["val/psnr/M40"] > metrics["val/psnr/M80"]
    assert metrics["val/mae_hu"] == pytest.approx(50.0, abs=1e-2)
    assert slice_indices(10, 4) == [0, 3, 6, 9]


def test_validation_noise_ratio_is_the_fine_noise_sd_over_the_references() -> None:
    m80 = np.random.default_rng(1).normal(40.0, 12.0, (6, 48, 48)).astype(np.float32)  # uniform, SD 12 HU
    m80[:, :, :8] = -1000.0  # air at one side: never counted
    study = {"M80": m80, "IR": 0.5 * (m80 - 40.0) + 140.0, "M40": m80 + 100.0}  # IR: half the noise
    metrics = _validate_shift(study, ("IR", "M40"), 6)
    assert metrics["val/noise_ratio/M40"] == pytest.approx(1.0, abs=1e-3)
    assert metrics["val/noise_ratio/IR"] == pytest.approx(0.5, abs=1e-3)
    assert metrics["val/noise_ratio_raw/IR"] == pytest.approx(0.5, abs=1e-3)
    from ctharmony.train.losses import flat_regions

    flat = flat_regions(torch.from_numpy(m80)[:, None], hu_per_unit=1.0, hu_min=0.0)
    assert not flat[..., :10].any() and flat[..., 12:].float().mean() > 0.8  # air and its edge left out


def test_validation_counts_a_resampled_input_only_where_it_covers_m80() -> None:
    m80 = np.random.default_rng(1).normal(40.0, 12.0, (6, 48, 48)).astype(np.float32)
    m40 = m80 + 100.0
    cover = np.ones(m80.shape, bool)
    cover[:, :, 30:] = False
    m40[~cover] = -1024.0  # what the resampler fills in where the input does not reach
    metrics = _validate_shift(PairedStudy({"M80": m80, "M40": m40}, {"M40": cover}), ("M40",), 6)
    assert metrics["val/mae_hu_raw/M40"] == pytest.approx(100.0, abs=1e-3)
    assert metrics["val/mae_hu/M40"] == pytest.approx(0.0, abs=1e-2)
    assert metrics["val/noise_ratio/M40"] == pytest.approx(1.0, abs=1e-3)


def test_segmenter_batches_are_aligned_patches_or_whole_slices() -> None:
    from ctharmony.train.segmenter import sample_batches

    rng = np.random.default_rng(0)
    hu = rng.normal(size=(5, 1, 20, 24)).astype(np.float32)
    masks = (hu > 0).astype(np.float32)  # a crop of the mask must match the crop of the image
    spec = load_spec("liver-unet", ["train.patch_size=12", "train.batch_size=4", "train.patches_per_epoch=10"])
    batches = list(sample_batches(hu, masks, spec, rng))
    assert [b[0].shape for b in batches] == [(4, 1, 12, 12), (4, 1, 12, 12), (2, 1, 12, 12)]
    for x, y in batches:
        np.testing.assert_array_equal(y, (x > 0).astype(np.float32))
        assert all(any(np.isin(patch, hu[i]).all() for i in range(5)) for patch in x[:, 0])
    whole = list(sample_batches(hu, masks, load_spec("liver-unet", ["train.patch_size=0", "train.batch_size=2"]),
                                rng))
    assert sorted(float(x[0, 0, 0]) for b, _ in whole for x in b) == sorted(hu[:, 0, 0, 0].tolist())
    with pytest.raises(ValueError, match="patch_size 32 exceeds"):
        next(sample_batches(hu, masks, load_spec("liver-unet", ["train.patch_size=32"]), rng))
