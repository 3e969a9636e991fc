"""Exponential moving average of the generator's weights (``net_g_ema``), the model that is exported.

Example:
    >>> import torch
    >>> net = torch.nn.Linear(2, 2)
    >>> ema = ModelEMA(net, decay=0.5)
    >>> ema.update(net)
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEMA:
    """``ema = decay * ema + (1 - decay) * net`` for parameters; buffers are copied."""

    def __init__(self, net: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(net).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        source = dict(net.named_parameters())
        for name, p in self.module.named_parameters():
            p.lerp_(source[name].detach(), 1.0 - self.decay)
        source_buffers = dict(net.named_buffers())
        for name, b in self.module.named_buffers():
            b.copy_(source_buffers[name])
