"""``HUModel``: the network plus its intensity spec and padding, so HU in means HU (or probability) out.

Everything downstream (conversion, evaluation, sweeps) calls models through this wrapper; the HU
window, the min-max normalisation to [0, 1] and the padding to the network's size multiple live
inside ``forward``, so inference can never normalise differently from training.

- kind ``"harmonizer"``: HU (N, 1, H, W) -> HU (N, 1, H, W) (the generator's output de-normalised);
- kind ``"segmenter"``: HU (N, 1, H, W) -> liver probability in [0, 1].

Example:
    >>> import torch
    >>> from ctharmony.models.registry import build
    >>> model = build("cpu-small")  # doctest: +SKIP
    >>> model(torch.full((1, 1, 30, 30), 80.0)).shape  # doctest: +SKIP
    torch.Size([1, 1, 30, 30])
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ctharmony.config import IntensitySpec, ModelSpec


def normalize(hu: torch.Tensor, intensity: IntensitySpec) -> torch.Tensor:
    """HU -> [0, 1] by the spec's window (values outside are clipped)."""
    span = intensity.hu_max - intensity.hu_min
    return ((hu - intensity.hu_min) / span).clamp(0.0, 1.0)


def denormalize(x: torch.Tensor, intensity: IntensitySpec) -> torch.Tensor:
    """[0, 1] -> HU (the inverse of :func:`normalize` inside the window)."""
    return x * (intensity.hu_max - intensity.hu_min) + intensity.hu_min


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Replicate-pad H and W up to a multiple; returns the padded tensor and the original (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (h, w)


class HUModel(nn.Module):
    """A network wrapped with its :class:`~ctharmony.config.ModelSpec` (intensity, kind, name).

    Args:
        net: the network on normalised images (generator, or a U-Net giving logits).
        spec: the model spec it was built from (travels with the saved/logged model).
        version: a version label (the MLflow registry version once registered).
    """

    def __init__(self, net: nn.Module, spec: ModelSpec, version: str = "0") -> None:
        super().__init__()
        self.net = net
        self.spec = spec
        self.version = str(version)
        self.size_multiple = int(getattr(net, "size_multiple", 1))

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def info(self) -> dict[str, Any]:
        """kind, name, version, intensity (hu_min, hu_max), spec name, size multiple."""
        return {
            "kind": self.spec.kind,
            "name": f"ctharmony-{'harmonizer' if self.spec.kind == 'harmonizer' else 'liver-unet'}",
            "version": self.version,
            "intensity": {"hu_min": self.spec.intensity.hu_min, "hu_max": self.spec.intensity.hu_max},
            "spec": self.spec.name,
            "size_multiple": self.size_multiple,
        }

    def forward(self, hu: torch.Tensor) -> torch.Tensor:
        if hu.ndim != 4 or hu.shape[1] != 1:
            raise ValueError(f"HUModel expects (N, 1, H, W) HU slices, got shape {tuple(hu.shape)}")
        x, (h, w) = pad_to_multiple(normalize(hu.float(), self.spec.intensity), self.size_multiple)
        y = self.net(x)[..., :h, :w]
        if self.spec.kind == "segmenter":
            return torch.sigmoid(y)
        return denormalize(y, self.spec.intensity)
