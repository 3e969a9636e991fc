"""Filling the GPU: precision choice, bf16 vs fp32 in HU, fp16 overflow rerun, compile fallback, batch sizing.

The CPU runs the same code paths (CPU autocast for bf16/fp16); the ``gpu`` tests rerun them on CUDA.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ctharmony.infer import tiling
from ctharmony.infer.predictors import HarmonizerPredictor
from ctharmony.infer.tiling import (
    CompiledWithFallback,
    batch_from_memory,
    precision_name,
    predict_slices,
    prepare_model,
)
from ctharmony.models import build

CUDA = torch.cuda.is_available()


def phantom_like(slices: int = 4, size: int = 128) -> np.ndarray:
    """Air, a soft-tissue body, a liver-like ellipse, a bone-like disc and CT-like noise (HU)."""
    yy, xx = np.mgrid[:size, :size] / size
    image = np.full((size, size), -1000.0, np.float32)
    image[((yy - 0.5) / 0.43) ** 2 + ((xx - 0.5) / 0.35) ** 2 < 1] = 40.0
    image[((yy - 0.45) / 0.2) ** 2 + ((xx - 0.38) / 0.16) ** 2 < 1] = 110.0
    image[((yy - 0.75) / 0.05) ** 2 + ((xx - 0.5) / 0.05) ** 2 < 1] = 900.0
    noise = np.random.default_rng(0).normal(0.0, 15.0, (slices, size, size)).astype(np.float32)
    return image[None] + noise


def harmonizer_with_residual():
    """cpu-small with its (zero-initialised) output conv set so the residual is tens of HU, like a trained one."""
    torch.manual_seed(0)
    model = build("cpu-small").eval()
    with torch.no_grad():
        model.net.tail.weight.normal_(0.0, 0.01)
    return model


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_bf16_is_within_1_hu_of_fp32(device):
    if device == "cuda" and not CUDA:
        pytest.skip("needs a CUDA device")
    model = harmonizer_with_residual().to(device)
    volume = phantom_like()
    fp32 = predict_slices(model, volume, amp="fp32", device=torch.device(device))
    bf16 = predict_slices(model, volume, amp="bf16", device=torch.device(device))
    residual = np.abs(fp32 - volume).mean()
    error = np.abs(bf16 - fp32)
    assert residual > 10.0  # the model really changes the image
    assert 0 < error.mean() <= 1.0, (error.mean(), residual)  # bf16 ran (not identical) and kept HU
    assert np.percentile(error, 99) <= 5.0


def test_precision_choice():
    cpu = torch.device("cpu")
    assert precision_name(None, cpu) == "fp32" and precision_name("auto", cpu) == "fp32"
    assert precision_name(False, cpu) == "fp32" and precision_name("bf16", cpu) == "bf16"
    with pytest.raises(ValueError, match="precision"):
        precision_name("int8", cpu)
    if CUDA:
        expected = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        assert precision_name(None, torch.device("cuda")) == expected


class _Overflows(torch.nn.Module):
    """A conv whose fp16 result overflows (|x| * 1e5 > 65504) while fp32 is fine."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.fill_(1e5)

    def forward(self, x):
        return self.conv(x) / 1e5


def test_fp16_overflow_reruns_the_batch_in_fp32(caplog):
    volume = np.full((3, 8, 8), 1000.0, np.float32)
    with caplog.at_level("WARNING", logger="ctharmony.infer.tiling"):
        out = predict_slices(_Overflows(), volume, amp="fp16", batch_slices=2)
    assert np.isfinite(out).all() and np.allclose(out, 1000.0, rtol=1e-4)
    assert "fp16 overflow" in caplog.text


def test_compile_falls_back_to_eager_when_compiling_fails(monkeypatch, caplog):
    model = harmonizer_with_residual()
    volume = phantom_like(slices=2, size=32)
    expected = predict_slices(model, volume, amp="fp32")

    def broken_compile(module, **kwargs):
        def run(x):
            raise RuntimeError("no compiler here")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    wrapped = prepare_model(model, torch.device("cpu"), channels_last=True, compile=True)
    assert isinstance(wrapped, CompiledWithFallback) and wrapped.spec.kind == "harmonizer"  # attributes pass through
    with caplog.at_level("WARNING", logger="ctharmony.infer.tiling"):
        out = predict_slices(wrapped, volume, amp="fp32", device=torch.device("cpu"))
    assert "running eager" in caplog.text and wrapped.compiled is None
    np.testing.assert_allclose(out, expected, atol=1e-3)  # channels-last weights, same numbers


def test_batch_size_from_free_memory():
    gib = 2**30
    assert batch_from_memory(10 * gib, gib // 4) == 24  # 60 % of 10 GiB at 256 MiB a slice
    assert batch_from_memory(gib, 4 * gib) == 1 and batch_from_memory(1000 * gib, 1) == tiling.MAX_AUTO_BATCH
    assert tiling.auto_batch_slices(torch.nn.Identity(), 64, 64, torch.device("cpu")) == tiling.DEFAULT_BATCH_SLICES
    out = predict_slices(torch.nn.Identity(), np.ones((11, 16, 16), np.float32), batch_slices=None)
    assert out.shape == (11, 16, 16) and float(out.mean()) == 1.0


def test_predictor_constructor_applies_the_settings(tmp_path):
    from ctharmony.models.io import save_model

    path = save_model(harmonizer_with_residual(), tmp_path / "h")
    plain = HarmonizerPredictor(str(path), device="cpu", amp="fp32", channels_last=False)  # auto: cpu_precision
    assert plain.amp == "fp32" and plain.batch_slices is None
    weight = plain.model.net.head.weight
    assert not weight.is_contiguous(memory_format=torch.channels_last)
    tuned = HarmonizerPredictor(str(path), device="cpu", amp="bf16", channels_last=True, batch_slices=3)
    assert tuned.amp == "bf16" and tuned.model.net.head.weight.is_contiguous(memory_format=torch.channels_last)
    volume = phantom_like(slices=3, size=32)
    assert np.abs(tuned.predict(volume) - plain.predict(volume)).mean() <= 1.0


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_cuda_path_auto_batch_pinned_copies_and_compile():
    model = prepare_model(harmonizer_with_residual(), torch.device("cuda"), channels_last=True, compile=True)
    volume = phantom_like(slices=20, size=256)
    out = predict_slices(model, volume, batch_slices=None, device=torch.device("cuda"), amp="auto")
    ref = predict_slices(harmonizer_with_residual(), volume, amp="fp32")
    assert np.abs(out - ref).mean() <= 1.0
    assert tiling.auto_batch_slices(model, 256, 256, torch.device("cuda"), precision_name(None, "cuda")) >= 1


BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_gpu.py"


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_bench_gpu_writes_its_figures(device, tmp_path):
    if device == "cuda" and not CUDA:
        pytest.skip("needs a CUDA device")
    out = tmp_path / "bench.json"
    sections = "forward" if device == "cpu" else "forward,ddp"
    done = subprocess.run([sys.executable, str(BENCH), "--device", device, "--sections", sections, "--out", str(out)],
                          capture_output=True,
                          encoding="utf-8", errors="replace", timeout=600, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text(encoding="utf-8"))
    runs = report["forward"]["runs"]
    assert {r["precision"] for r in runs} == {"fp32", "bf16"} and report["forward"]["gflop_per_slice"] > 0
    assert all(r["slices_per_s"] > 0 and r["tflops"] > 0 for r in runs)
    if device == "cuda":
        assert any(r["compiled"] for r in runs) and report["peak_gpu_memory_gib"] > 0
        assert report["ddp"]["samples_per_s_1_workers"] > 0
