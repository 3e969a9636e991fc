"""One optimisation step of each stage (BasicSR naming: net_g, net_d, loss_g_l1, loss_d_real, ...).

Stage 1 trains ``net_g`` alone with L1. Stage 2 updates ``net_g`` with λ1·L1 + λ2·perceptual + λ3·GAN
(+ λ4·texture, :func:`ctharmony.train.losses.texture_loss`, when ``loss.texture`` > 0) while ``net_d``
is frozen (its parameters get no gradient), then updates ``net_d`` on real and detached fake images.
Under DDP, pass the DDP-wrapped nets: the G step calls ``net_d``'s inner module (no gradient sync for a
frozen net), the D step the wrapper.

Example::

    metrics = stage1_step(net_g, opt_g, x, y)
    sorted(metrics)
    # -> ['loss_g_l1']
"""

from __future__ import annotations

import torch
from torch import nn

from ctharmony.config import IntensitySpec, LossSpec
from ctharmony.train.losses import gan_loss, l1_loss, texture_loss


def unwrap(net: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the net itself)."""
    return getattr(net, "module", net)


def set_requires_grad(net: nn.Module, flag: bool) -> None:
    for p in net.parameters():
        p.requires_grad_(flag)


def stage1_step(
    net_g: nn.Module, opt_g: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
) -> dict[str, float]:
    """Generator alone, L1 (PSNR-oriented)."""
    opt_g.zero_grad(set_to_none=True)
    loss = l1_loss(net_g(x), y)
    loss.backward()
    opt_g.step()
    return {"loss_g_l1": float(loss.detach())}


def stage2_step(
    net_g: nn.Module,
    net_d: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    loss: LossSpec,
    perceptual: nn.Module | None,
    intensity: IntensitySpec | None = None,
) -> dict[str, float]:
    """Real-ESRGAN stage 2: G step with D frozen, then D step on real and detached fake.

    ``intensity``: the images' HU window, which the texture loss needs to find uniform regions (default:
    the spec's default window).
    """
    d_inner = unwrap(net_d)
    set_requires_grad(d_inner, False)
    opt_g.zero_grad(set_to_none=True)
    fake = net_g(x)
    loss_g_l1 = l1_loss(fake, y)
    use_percep = perceptual is not None and loss.perceptual
    loss_g_percep = perceptual(fake, y) if use_percep else fake.new_zeros(())
    loss_g_gan = gan_loss(d_inner(fake), real=True)
    window = intensity or IntensitySpec()
    loss_g_texture = (texture_loss(fake, y, window.hu_max - window.hu_min, window.hu_min) if loss.texture
                      else fake.new_zeros(()))
    total = (loss.l1 * loss_g_l1 + loss.perceptual * loss_g_percep + loss.gan * loss_g_gan
             + loss.texture * loss_g_texture)
    total.backward()
    opt_g.step()

    set_requires_grad(d_inner, True)
    opt_d.zero_grad(set_to_none=True)
    loss_d_real = gan_loss(net_d(y), real=True)
    loss_d_fake = gan_loss(net_d(fake.detach()), real=False)
    (loss_d_real + loss_d_fake).backward()
    opt_d.step()
    return {
        "loss_g_l1": float(loss_g_l1.detach()),
        "loss_g_percep": float(loss_g_percep.detach()),
        "loss_g_gan": float(loss_g_gan.detach()),
        "loss_g_texture": float(loss_g_texture.detach()),
        "loss_g_total": float(total.detach()),
        "loss_d_real": float(loss_d_real.detach()),
        "loss_d_fake": float(loss_d_fake.detach()),
    }
