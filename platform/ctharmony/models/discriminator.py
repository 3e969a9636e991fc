"""Real-ESRGAN's U-Net discriminator with spectral normalisation (per-pixel real/fake logits).

Same layout as Real-ESRGAN's ``UNetDiscriminatorSN`` (Wang et al. 2021): three strided 4x4
down-convolutions, three bilinear-upsampled 3x3 convolutions with skip additions, two extra 3x3
convolutions and a 1-channel logit map of the input's size. Every convolution except the first and
the last is wrapped in ``torch.nn.utils.spectral_norm``. H and W must be multiples of 8.

Example:
    >>> import torch
    >>> net = UNetDiscriminatorSN(channels=8)
    >>> net(torch.zeros(1, 1, 32, 32)).shape
    torch.Size([1, 1, 32, 32])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm


class UNetDiscriminatorSN(nn.Module):
    """``D``: (N, 1, H, W) in [0, 1] -> (N, 1, H, W) logits."""

    size_multiple = 8

    def __init__(self, in_channels: int = 1, channels: int = 64, skip_connection: bool = True) -> None:
        super().__init__()
        c = channels
        self.skip_connection = skip_connection
        self.conv0 = nn.Conv2d(in_channels, c, 3, 1, 1)
        self.conv1 = spectral_norm(nn.Conv2d(c, c * 2, 4, 2, 1, bias=False))
        self.conv2 = spectral_norm(nn.Conv2d(c * 2, c * 4, 4, 2, 1, bias=False))
        self.conv3 = spectral_norm(nn.Conv2d(c * 4, c * 8, 4, 2, 1, bias=False))
        self.conv4 = spectral_norm(nn.Conv2d(c * 8, c * 4, 3, 1, 1, bias=False))
        self.conv5 = spectral_norm(nn.Conv2d(c * 4, c * 2, 3, 1, 1, bias=False))
        self.conv6 = spectral_norm(nn.Conv2d(c * 2, c, 3, 1, 1, bias=False))
        self.conv7 = spectral_norm(nn.Conv2d(c, c, 3, 1, 1, bias=False))
        self.conv8 = spectral_norm(nn.Conv2d(c, c, 3, 1, 1, bias=False))
        self.conv9 = nn.Conv2d(c, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 8 or x.shape[-2] % 8:
            raise ValueError(f"discriminator input H and W must be multiples of 8, got {tuple(x.shape[-2:])}")

        def act(t: torch.Tensor) -> torch.Tensor:
            return F.leaky_relu(t, negative_slope=0.2)

        def up(t: torch.Tensor) -> torch.Tensor:
            return F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)

        x0 = act(self.conv0(x))
        x1 = act(self.conv1(x0))
        x2 = act(self.conv2(x1))
        x3 = act(self.conv3(x2))
        x4 = act(self.conv4(up(x3)))
        if self.skip_connection:
            x4 = x4 + x2
        x5 = act(self.conv5(up(x4)))
        if self.skip_connection:
            x5 = x5 + x1
        x6 = act(self.conv6(up(x5)))
        if self.skip_connection:
            x6 = x6 + x0
        out = act(self.conv7(x6))
        out = act(self.conv8(out))
        return self.conv9(out)
