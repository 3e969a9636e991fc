from __future__ import annotations

import pytest
import torch

from ctharmony.models import build
from ctharmony.models.generator import HFSGenerator


@pytest.mark.parametrize("name", ["cpu-small", "paper"])
def test_generator_shapes_for_both_specs(name: str) -> None:
    model = build(name)
    for h, w in [(32, 32), (30, 46)]:  # odd multiples are padded inside the HUModel
        out = model(torch.full((2, 1, h, w), 40.0))
        assert out.shape == (2, 1, h, w)
        assert out.dtype == torch.float32


def test_pixel_unshuffle_then_shuffle_is_exactly_lossless() -> None:
    net = HFSGenerator(channels=8, modules=1, res_blocks=1, unshuffle=2)
    x = torch.rand(3, 1, 16, 24)
    packed = net.unshuffle(x)
    assert packed.shape == (3, 4, 8, 12)  # a quarter of the pixels per channel, none dropped
    assert torch.equal(net.shuffle(packed), x)


def test_generator_starts_as_identity_and_uses_the_hierarchical_trunk() -> None:
    net = HFSGenerator(channels=8, modules=2, res_blocks=3)
    x = torch.rand(1, 1, 16, 16)
    assert torch.equal(net(x), x)  # zero-initialised tail: global residual only
    assert len(net.trunk) == 2 and len(net.trunk[0].blocks) == 3
    assert net.trunk[0].fuse.in_channels == 8 * 3  # every block's output aggregated
    torch.nn.init.normal_(net.tail.weight, std=0.1)
    assert not torch.allclose(net(x), x)


def test_generator_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError):
        HFSGenerator(channels=0)
