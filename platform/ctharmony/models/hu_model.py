"""``HUModel``: the network plus its intensity spec and padding, so HU in means HU (or probability) out.

Everything downstream (conversion, evaluation, sweeps) calls models through this wrapper; the HU
window, the min-max normalisation to [0, 1] and the padding to the network's size multiple live
inside ``forward``, so inference can never normalise differently from training.

- kind ``"harmonizer"``: HU (N, 1, H, W) -> HU (N, 1, H, W) (the generator's output de-normalised);
- kind ``"segmenter"``: HU (N, 1, H, W) -> liver probability in [0, 1].

:func:`normalize` (and :func:`rewindow` between two windows) is the one HU normalisation: training
(``ctharmony.train``) calls it too.

Example:
    >>> import torch
    >>> from ctharmony.models.registry import build
    >>> model = build("cpu-small")
    >>> model(torch.full((1, 1, 30, 30), 80.0)).shape
    torch.Size([1, 1, 30, 30])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ctharmony.models.interface import HUModule, denormalize, normalize, pad_to_multiple
from ctharmony.models.spec import IntensitySpec, ModelSpec

__all__ = ["HUModel", "denormalize", "normalize", "pad_to_multiple", "rewindow"]


def rewindow(x: torch.Tensor, source: IntensitySpec, dest: IntensitySpec) -> torch.Tensor:
    """Images normalised by ``source``'s window -> ``dest``'s [0, 1] (differentiable; clipped to ``dest``).

    Example:
        >>> wide, narrow = IntensitySpec(-1024.0, 2048.0), IntensitySpec(-160.0, 240.0)
        >>> float(rewindow(normalize(torch.tensor(40.0), wide), wide, narrow))
        0.5
    """
    return normalize(denormalize(x, source), dest)


class HUModel(HUModule):
    """A network wrapped with its :class:`~ctharmony.models.spec.ModelSpec` (intensity, kind, name).

    Implements :class:`~ctharmony.models.interface.HUModule`: ``pre_process`` / ``predict`` /
    ``post_process`` on 2-D slices; a segmenter's U-Net also gives ``features`` (its deepest encoder map).

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
    def kind(self) -> str:  # type: ignore[override]
        return self.spec.kind

    @property
    def intensity(self) -> IntensitySpec:  # type: ignore[override]
        return self.spec.intensity

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

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @property
    def has_features(self) -> bool:
        return callable(getattr(self.net, "encode", None))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The U-Net's deepest encoder feature map of a network input (what ``SegmenterEncoder`` used)."""
        if not self.has_features:
            raise NotImplementedError(f"the {self.kind} network {type(self.net).__name__} exposes no features")
        return self.net.encode(x)[-1]
