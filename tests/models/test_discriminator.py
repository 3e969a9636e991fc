from __future__ import annotations

import pytest
import torch

from ctharmony.models import build_discriminator, load_spec
from ctharmony.models.discriminator import UNetDiscriminatorSN


def test_discriminator_gives_per_pixel_logits() -> None:
    net = build_discriminator(load_spec("cpu-small"))
    assert net(torch.rand(2, 1, 64, 48)).shape == (2, 1, 64, 48)


def test_spectral_norm_on_every_inner_conv() -> None:
    net = UNetDiscriminatorSN(channels=8)
    normed = {name for name, m in net.named_modules() if hasattr(m, "weight_orig")}
    assert normed == {f"conv{i}" for i in range(1, 9)}  # conv0 and conv9 plain, as in Real-ESRGAN
    assert not hasattr(net.conv0, "weight_orig") and not hasattr(net.conv9, "weight_orig")
    # spectral norm keeps the largest singular value of each normalised weight near 1
    net.train()
    for _ in range(20):
        net(torch.rand(1, 1, 32, 32))
    sigma = torch.linalg.matrix_norm(net.conv2.weight.detach().flatten(1), ord=2)
    assert 0.8 < float(sigma) < 1.2


def test_discriminator_refuses_sizes_not_multiple_of_8() -> None:
    with pytest.raises(ValueError, match="multiples of 8"):
        UNetDiscriminatorSN(channels=4)(torch.rand(1, 1, 20, 20))
