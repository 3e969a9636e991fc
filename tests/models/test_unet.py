from __future__ import annotations

import torch

from ctharmony.models import build
from ctharmony.models.unet import UNet2D


def test_unet_shapes_and_encoder_levels() -> None:
    net = UNet2D(channels=4, depth=3)
    x = torch.rand(2, 1, 24, 32)
    assert net(x).shape == (2, 1, 24, 32)
    assert [f.shape[1] for f in net.encode(x)] == [4, 8, 16]


def test_liver_unet_spec_gives_probabilities_on_hu() -> None:
    model = build("liver-unet")
    assert model.kind == "segmenter"
    prob = model(torch.full((1, 1, 40, 36), 60.0))
    assert prob.shape == (1, 1, 40, 36)
    assert float(prob.min()) >= 0.0 and float(prob.max()) <= 1.0


def test_unet_norm_choices() -> None:
    import pytest

    kinds = {norm: type(UNet2D(channels=4, depth=2, norm=norm).down[0][1]).__name__ for norm in
             ("batch", "group", "none")}
    assert kinds == {"batch": "BatchNorm2d", "group": "GroupNorm", "none": "Identity"}
    with pytest.raises(ValueError, match="norm must be one of"):
        UNet2D(norm="layer")
