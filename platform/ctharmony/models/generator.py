"""The harmonizer's generator: pixel-unshuffle, hierarchical feature synthesis, pixel-shuffle.

Layout (Lee et al. 2023, after the group's residual-feature-aggregation CT conversion GAN):

1. ``PixelUnshuffle(r)``: the input's ``H x W`` pixels become ``r*r`` channels of ``H/r x W/r``
   (a quarter of the pixels for r=2, nothing lost — it replaced average pooling in the paper);
2. a head convolution, then a trunk of :class:`HierarchicalFeatureSynthesis` modules: each runs a
   chain of residual blocks, concatenates (aggregates) every block's output, fuses them with a 1x1
   convolution and reweights the result with a spatial-attention map, inside a module residual;
3. a trunk convolution with a long skip, a convolution to ``r*r`` channels and ``PixelShuffle(r)``
   back to full size, added to the input (global residual: the network learns the correction).

Works on normalised images in [0, 1]; H and W must be multiples of ``r`` (the :class:`HUModel`
wrapper pads to that multiple).

Example:
    >>> import torch
    >>> net = HFSGenerator(channels=8, modules=1, res_blocks=1)
    >>> net(torch.zeros(2, 1, 32, 32)).shape
    torch.Size([2, 1, 32, 32])
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    """conv-ReLU-conv with an identity skip."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SpatialAttention(nn.Module):
    """A per-pixel gate in (0, 1) computed from channel-mean and channel-max maps and local context."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        reduced = max(channels // 4, 4)
        self.squeeze = nn.Conv2d(channels, reduced, 1)
        self.context = nn.Sequential(
            nn.Conv2d(reduced + 2, reduced, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(reduced, 1, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True), self.squeeze(x)], dim=1)
        return x * torch.sigmoid(self.context(pooled))


class HierarchicalFeatureSynthesis(nn.Module):
    """Residual blocks whose outputs are all aggregated, fused (1x1) and spatially attended."""

    def __init__(self, channels: int, res_blocks: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(ResidualBlock(channels) for _ in range(res_blocks))
        self.fuse = nn.Conv2d(channels * res_blocks, channels, 1)
        self.attention = SpatialAttention(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = []
        h = x
        for block in self.blocks:
            h = block(h)
            features.append(h)
        return x + self.attention(self.fuse(torch.cat(features, dim=1)))


class HFSGenerator(nn.Module):
    """Generator ``G``: (N, 1, H, W) in [0, 1] -> (N, 1, H, W), H and W multiples of ``unshuffle``."""

    def __init__(self, channels: int = 64, modules: int = 4, res_blocks: int = 4, unshuffle: int = 2) -> None:
        super().__init__()
        if min(channels, modules, res_blocks, unshuffle) < 1:
            raise ValueError("channels, modules, res_blocks and unshuffle must all be >= 1")
        self.size_multiple = unshuffle
        packed = unshuffle * unshuffle
        self.unshuffle = nn.PixelUnshuffle(unshuffle)
        self.head = nn.Conv2d(packed, channels, 3, padding=1)
        self.trunk = nn.Sequential(
            *(HierarchicalFeatureSynthesis(channels, res_blocks) for _ in range(modules))
        )
        self.trunk_conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.tail = nn.Conv2d(channels, packed, 3, padding=1)
        self.shuffle = nn.PixelShuffle(unshuffle)
        nn.init.zeros_(self.tail.weight)  # start as the identity map: G(x) = x
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.head(self.unshuffle(x))
        body = self.trunk_conv(self.trunk(head)) + head
        return x + self.shuffle(self.tail(body))
