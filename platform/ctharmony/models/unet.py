"""A 2D U-Net for the liver: the reference segmenter, trained on M80 only (the paper's stand-in).

``encode`` exposes the encoder's feature maps, so the trained segmenter doubles as a perceptual
feature extractor that needs no download (see :mod:`ctharmony.models.perceptual`).

Example:
    >>> import torch
    >>> net = UNet2D(channels=4, depth=2)
    >>> net(torch.zeros(1, 1, 16, 16)).shape  # logits
    torch.Size([1, 1, 16, 16])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("batch", "group", "none")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    return nn.Identity()


def _double_conv(cin: int, cout: int, norm: str) -> nn.Sequential:
    # A per-image norm ("group") makes the net invariant to global intensity shifts; "batch" or "none"
    # keep it sensitive, like a conventionally trained segmenter (the paper's M40 failure).
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=norm == "none"),
        _norm(norm, cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=norm == "none"),
        _norm(norm, cout),
        nn.ReLU(inplace=True),
    )


class UNet2D(nn.Module):
    """(N, 1, H, W) in [0, 1] -> (N, 1, H, W) liver logits; H, W multiples of ``2**(depth-1)``."""

    def __init__(self, in_channels: int = 1, channels: int = 32, depth: int = 4, norm: str = "batch") -> None:
        super().__init__()
        if depth < 1 or channels < 1:
            raise ValueError("channels and depth must be >= 1")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
        self.size_multiple = 2 ** (depth - 1)
        widths = [channels * 2**i for i in range(depth)]
        self.down = nn.ModuleList()
        cin = in_channels
        for width in widths:
            self.down.append(_double_conv(cin, width, norm))
            cin = width
        self.up = nn.ModuleList()
        self.reduce = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.reduce.append(nn.Conv2d(cin, width, 1))
            self.up.append(_double_conv(width * 2, width, norm))
            cin = width
        self.out = nn.Conv2d(cin, 1, 1)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of every encoder level, finest first."""
        features = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            features.append(x)
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encode(x)
        x = features[-1]
        for reduce, block, skip in zip(self.reduce, self.up, reversed(features[:-1]), strict=True):
            x = F.interpolate(reduce(x), size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.out(x)
