"""What every baseline shares: the ``baseline-`` name prefix, HU in either array type, the model face.

A baseline is a weightless ``torch.nn.Module`` with ``info`` (kind ``"harmonizer"``, name, a version
hashed from its fitted parameters) that maps HU slices ``(N, 1, H, W)`` or a volume ``(z, y, x)`` (numpy
array or torch tensor) to HU of the same shape and type, so the conversion predictors run it like an
``HUModel``. Reports list a model whose name starts with :data:`BASELINE_PREFIX` under the rest of its
name (``ctharmony.evaluate.naming``).

Example:
    >>> as_numpy([1, 2])[0].dtype
    dtype('float32')
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

BASELINE_PREFIX = "baseline-"


def as_numpy(hu: Any) -> tuple[np.ndarray, Callable[[np.ndarray], Any]]:
    """HU as a float32 ndarray and a function that turns a result back into the caller's type."""
    if isinstance(hu, torch.Tensor):
        device, dtype = hu.device, hu.dtype
        return hu.detach().cpu().numpy().astype(np.float32), lambda a: torch.from_numpy(a).to(device, dtype)
    return np.asarray(hu, dtype=np.float32), lambda a: a


class Baseline(torch.nn.Module):
    """What the conversion pipeline expects of a model: a module with ``info`` mapping HU to HU."""

    name = BASELINE_PREFIX + "none"
    kind = "harmonizer"
    needs_protocol = False

    @property
    def version(self) -> str:
        return hashlib.sha256(json.dumps(self._params(), sort_keys=True).encode()).hexdigest()[:12]

    @property
    def info(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "version": self.version, "spec": self.name}

    def _params(self) -> Any:
        raise NotImplementedError


class ProtocolBound(Baseline):
    """A per-protocol baseline bound to one protocol (a one-argument module, like an ``HUModel``)."""

    def __init__(self, baseline: Baseline, protocol: str) -> None:
        super().__init__()
        self.baseline, self.protocol = baseline, protocol
        self.name = baseline.name

    def _params(self) -> Any:
        return self.baseline._params()

    def forward(self, hu: Any) -> Any:
        return self.baseline(hu, protocol=self.protocol)
