"""``--precision auto`` on CPU: bf16 only where the CPU has it natively, and bf16 within tolerance of fp32.

The tolerance check runs the predictors as the actors do (harmonizer, then segmenter on original and
harmonized) on phantom series of 64 x 64, once in fp32 NCHW and once in bf16 channels-last (emulated
where the CPU lacks native bf16: same numbers, only slower).
"""

from __future__ import annotations

import numpy as np
import torch

from ctharmony.infer import cpu_precision
from ctharmony.infer.cpu_precision import DICE_TOLERANCE, HU_TOLERANCE, cpu_auto_precision, native_bf16
from ctharmony.infer.pipeline import load_catalog_series, read_catalog_row
from ctharmony.infer.predictors import HarmonizerPredictor, SegmenterPredictor
from ctharmony.models import build


def _harmonizer():
    """cpu-small whose (zero-initialised) output conv makes the residual tens of HU, like a trained one."""
    torch.manual_seed(0)
    model = build("cpu-small")
    with torch.no_grad():
        model.net.tail.weight.normal_(0.0, 0.01)
    return model


def _cpu_units(monkeypatch, bf16: bool) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)


def test_auto_picks_bf16_by_the_cpus_capability(monkeypatch):
    model = _harmonizer()
    _cpu_units(monkeypatch, bf16=False)
    assert not native_bf16() and cpu_auto_precision(model) == "fp32"
    assert HarmonizerPredictor(model, device="cpu").amp == "fp32"
    _cpu_units(monkeypatch, bf16=True)
    assert native_bf16() == torch.ops.mkldnn._is_mkldnn_bf16_supported()  # and oneDNN can use it
    predictor = HarmonizerPredictor(model, device="cpu")
    assert predictor.amp == cpu_auto_precision(model) == ("bf16" if native_bf16() else "fp32")
    assert predictor.model.net.head.weight.is_contiguous(memory_format=torch.channels_last)
    assert HarmonizerPredictor(model, device="cpu", amp="fp32").amp == "fp32"  # fp32 stays available
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")  # a torch without the probe: fp32
    assert not native_bf16() and cpu_auto_precision(model) == "fp32"


def test_a_users_network_stays_fp32_and_as_loaded(monkeypatch):
    _cpu_units(monkeypatch, bf16=True)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Conv2d(4, 1, 3, padding=1))
    predictor = HarmonizerPredictor(net, device="cpu")
    assert predictor.amp == "fp32" and not cpu_precision.tuned_network(net)
    assert not predictor.model[1].weight.is_contiguous(memory_format=torch.channels_last)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / max(int(a.sum()) + int(b.sum()), 1)


def _fitted_segmenter(catalog):
    """liver-unet fitted for a few seconds on the phantom's M80 slices: masks of the liver, not of everything."""
    from ctharmony.archive import read_catalog
    from ctharmony.models.registry import load_spec
    from ctharmony.train.segmenter import fit_segmenter, m80_records, read_mask_on_grid

    spec = load_spec("liver-unet", ["train.epochs_stage1=4", "train.patches_per_epoch=64"])
    records = m80_records(read_catalog(catalog).series(), catalog.parent / "archive" / "masks")
    return fit_segmenter(spec, [read_mask_on_grid(r["mask"], r["files"]) for r in records], [])


def test_bf16_channels_last_agrees_with_fp32_on_phantom_series(phantom_catalog):
    catalog, _ = phantom_catalog
    rows = [read_catalog_row(item) for item in load_catalog_series(catalog) if item["protocol"] in ("M40", "FBP")]
    batch = {"hu": np.stack([row["hu"] for row in rows]), "status": np.array(["ok"] * len(rows)),
             "direction": np.stack([row["direction"] for row in rows])}
    harmonizer, segmenter = _harmonizer(), _fitted_segmenter(catalog)
    outputs = {}
    for precision, layout in (("fp32", False), ("bf16", True)):
        harmonize = HarmonizerPredictor(harmonizer, device="cpu", amp=precision, channels_last=layout)
        segment = SegmenterPredictor(segmenter, device="cpu", amp=precision, channels_last=layout)
        assert harmonize.amp == segment.amp == precision
        outputs[precision] = segment(harmonize(batch))
    fp32, bf16 = outputs["fp32"], outputs["bf16"]
    assert np.abs(fp32["hu_harmonized"] - batch["hu"]).mean() > 10.0  # the harmonizer really changes HU
    error = np.abs(bf16["hu_harmonized"] - fp32["hu_harmonized"])
    assert 0.0 < error.mean() <= HU_TOLERANCE, error.mean()  # bf16 ran (not identical) and kept HU
    for mask in ("mask_original", "mask_harmonized"):
        reference = fp32[mask].astype(bool)
        assert 0.01 < reference.mean() < 0.5, reference.mean()  # a mask worth comparing: some liver
        assert _dice(bf16[mask].astype(bool), reference) >= DICE_TOLERANCE, mask
