"""The model interface: pre_process / predict / post_process, 2-D and 3-D, and the one normalisation."""

from __future__ import annotations

import pytest
import torch

from ctharmony.models import build
from ctharmony.models.external import ExternalModel
from ctharmony.models.hu_model import rewindow
from ctharmony.models.interface import normalize, pad_to_multiple
from ctharmony.models.spec import ExternalSpec, IntensitySpec


def test_hu_model_is_its_three_steps() -> None:
    torch.manual_seed(0)
    model = build("liver-unet").eval()
    hu = torch.randn(2, 1, 30, 37) * 300
    with torch.no_grad():
        x = model.pre_process(hu)
        assert x.shape[-2:] == (32, 40) and float(x.min()) >= 0 and float(x.max()) <= 1
        steps = model.post_process(model.predict(x), hu)
        assert torch.equal(steps, model(hu))
        assert steps.shape == hu.shape and float(steps.min()) >= 0 and float(steps.max()) <= 1
        assert torch.equal(model.features(x), model.net.encode(x)[-1])
    assert model.has_features and model.dims == 2


def test_an_external_3d_model_pads_and_crops_every_axis() -> None:
    seen = {}

    class Net(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen["shape"] = tuple(x.shape)
            return x

    spec = ExternalSpec(kind="harmonizer", dims=3, size_multiple=4, intensity=IntensitySpec(-100.0, 300.0))
    model = ExternalModel(Net(), spec, name="n", version="1")
    hu = torch.linspace(-200, 400, 5 * 6 * 7).reshape(1, 1, 5, 6, 7)
    out = model(hu)
    assert seen["shape"] == (1, 1, 8, 8, 8) and out.shape == hu.shape
    assert torch.allclose(out, hu.clamp(-100, 300), atol=1e-4)
    with pytest.raises(ValueError, match=r"\(1, 1, Z, H, W\) HU volume"):
        model(torch.zeros(1, 1, 4, 4))
    assert not model.has_features and model.info["dims"] == 3


def test_one_normalisation_for_training_and_inference() -> None:
    wide, narrow = IntensitySpec(-1024.0, 2048.0), IntensitySpec(-160.0, 240.0)
    hu = torch.tensor([-2000.0, -160.0, 40.0, 240.0, 3000.0])
    assert normalize(hu, narrow).tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    assert torch.allclose(rewindow(normalize(hu, wide), wide, narrow), normalize(hu.clamp(-1024, 2048), narrow))
    padded, sizes = pad_to_multiple(torch.zeros(1, 1, 5, 6), 4)
    assert padded.shape == (1, 1, 8, 8) and sizes == (5, 6)
