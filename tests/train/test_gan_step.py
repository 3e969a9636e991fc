from __future__ import annotations

import pytest
import torch

from ctharmony.config import LossSpec
from ctharmony.models.discriminator import UNetDiscriminatorSN
from ctharmony.models.generator import HFSGenerator
from ctharmony.models.perceptual import SegmenterEncoder
from ctharmony.models.unet import UNet2D
from ctharmony.train.gan import stage1_step, stage2_step
from ctharmony.train.losses import PerceptualLoss, Rewindow, gan_loss


def _nets():
    torch.manual_seed(0)
    g = HFSGenerator(channels=8, modules=1, res_blocks=2)
    torch.nn.init.normal_(g.tail.weight, std=0.01)
    d = UNetDiscriminatorSN(channels=4)
    return g, d, torch.optim.Adam(g.parameters(), 1e-3), torch.optim.Adam(d.parameters(), 1e-3)


def test_stage1_is_l1_only_and_leaves_d_alone() -> None:
    g, d, opt_g, _ = _nets()
    before = [p.clone() for p in d.parameters()]
    x, y = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    metrics = stage1_step(g, opt_g, x, y)
    assert set(metrics) == {"loss_g_l1"}
    assert all(torch.equal(a, b) for a, b in zip(before, d.parameters(), strict=True))


def test_discriminator_is_frozen_during_the_generator_step() -> None:
    g, d, opt_g, opt_d = _nets()
    x, y = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    seen: dict[str, bool] = {}

    def spy(step_fn):  # record D's grads right after the G optimiser step, before the D step
        def wrapped(*args, **kwargs):
            seen["d_grads_in_g_step"] = any(p.grad is not None for p in d.parameters())
            seen["d_requires_grad_in_g_step"] = any(p.requires_grad for p in d.parameters())
            return step_fn(*args, **kwargs)

        return wrapped

    opt_g.step = spy(opt_g.step)
    g_before = [p.clone() for p in g.parameters()]
    d_before = [p.clone() for p in d.parameters()]
    metrics = stage2_step(g, d, opt_g, opt_d, x, y, LossSpec(perceptual=0.0), None)
    assert seen == {"d_grads_in_g_step": False, "d_requires_grad_in_g_step": False}
    assert {"loss_g_l1", "loss_g_gan", "loss_g_percep", "loss_d_real", "loss_d_fake"} <= set(metrics)
    assert any(not torch.equal(a, b) for a, b in zip(g_before, g.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(d_before, d.parameters(), strict=True))  # D step ran
    assert all(p.requires_grad for p in d.parameters())  # unfrozen again for the next D step


def test_stage2_total_weights_the_three_losses() -> None:
    g, d, opt_g, opt_d = _nets()
    extractor = PerceptualLoss(SegmenterEncoder(UNet2D(channels=4, depth=2)))
    x, y = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    m = stage2_step(g, d, opt_g, opt_d, x, y, LossSpec(l1=10.0, perceptual=2.0, gan=0.5), extractor)
    assert m["loss_g_percep"] > 0
    expected = 10.0 * m["loss_g_l1"] + 2.0 * m["loss_g_percep"] + 0.5 * m["loss_g_gan"]
    assert m["loss_g_total"] == pytest.approx(expected, rel=1e-5)


def test_gan_loss_and_rewindow() -> None:
    assert gan_loss(torch.full((1, 1, 2, 2), 10.0), real=True) < 1e-3
    assert gan_loss(torch.full((1, 1, 2, 2), 10.0), real=False) > 5
    rewindow = Rewindow((-1024.0, 2048.0), (-160.0, 240.0))
    x = (torch.tensor([-160.0, 40.0, 240.0]) + 1024.0) / 3072.0
    assert torch.allclose(rewindow(x), torch.tensor([0.0, 0.5, 1.0]), atol=1e-5)
