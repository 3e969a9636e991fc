from __future__ import annotations

import torch
from torch import nn

from ctharmony.config import IntensitySpec, ModelSpec
from ctharmony.models.hu_model import HUModel, denormalize, normalize, pad_to_multiple


class Probe(nn.Module):
    """Identity that records what it was given."""

    size_multiple = 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x.clone()
        return x


def test_normalisation_window_lives_inside_the_model() -> None:
    spec = ModelSpec(name="t", intensity=IntensitySpec(hu_min=-100.0, hu_max=300.0))
    probe = Probe()
    model = HUModel(probe, spec)
    hu = torch.tensor([[[[-1000.0, -100.0, 100.0, 300.0, 900.0]]]])
    out = model(hu)
    assert probe.seen.shape[-2:] == (8, 8)  # padded to the network's multiple
    assert torch.allclose(probe.seen[0, 0, 0, :5], torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))
    assert out.shape == hu.shape
    assert torch.allclose(out, hu.clamp(-100, 300))  # identity net: HU back, window applied
    assert model.info["intensity"] == {"hu_min": -100.0, "hu_max": 300.0}
    assert model.info["kind"] == "harmonizer"


def test_segmenter_kind_outputs_probability() -> None:
    model = HUModel(Probe(), ModelSpec(name="s", kind="segmenter"))
    out = model(torch.zeros(1, 1, 5, 5))
    assert torch.all((out > 0) & (out < 1))


def test_helpers_round_trip() -> None:
    spec = IntensitySpec(hu_min=-1024.0, hu_max=2048.0)
    hu = torch.linspace(-1024, 2048, 11)
    assert torch.allclose(denormalize(normalize(hu, spec), spec), hu, atol=1e-3)
    x, size = pad_to_multiple(torch.zeros(1, 1, 5, 7), 4)
    assert x.shape == (1, 1, 8, 8) and size == (5, 7)
