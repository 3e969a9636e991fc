"""The model interface every stage calls: HU in, HU or liver probability out, in three steps.

``pre_process`` (HU -> network input: the model's HU window, min-max to [0, 1], padding to the network's
size multiple), ``predict`` (the network) and ``post_process`` (crop back; a segmenter's logits ->
probability, a harmonizer's output -> HU), as MONAI Deploy's ``InferenceOperator`` splits them.
``forward(hu)`` chains the three, so a model is called like any module. The intensity handling lives
here once, whoever built the network (ctharmony's ``HUModel``, a user's TorchScript or ONNX file).

- ``dims == 2``: HU slices ``(N, 1, H, W)``; ``dims == 3``: a whole volume ``(1, 1, Z, H, W)``.
- ``features(x)`` (optional, see :attr:`HUModule.has_features`): feature maps of a network input, what
  the perceptual loss compares.
- ``info``: kind, name, version, intensity (what results and reports record).

Example:
    >>> import torch
    >>> from ctharmony.models.spec import IntensitySpec
    >>> class Half(HUModule):
    ...     kind, intensity = "segmenter", IntensitySpec(-100.0, 100.0)
    ...     def predict(self, x):
    ...         return torch.zeros_like(x)
    >>> float(Half()(torch.zeros(1, 1, 4, 4)).mean())  # logits 0 -> probability 0.5
    0.5
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from ctharmony.models.spec import IntensitySpec

KINDS = ("harmonizer", "segmenter")


@runtime_checkable
class ModelFace(Protocol):
    """What every harmonizer, segmenter and baseline shows the pipeline, whoever built it.

    ``info`` (kind, name, version, ...) for results and reports, and a call: HU slices ``(N, 1, H, W)`` (or a
    volume, for ``dims == 3``) in, HU (harmonizer) or liver probability (segmenter) out.
    """

    @property
    def info(self) -> Mapping[str, Any]: ...

    def __call__(self, hu: Any) -> Any: ...


def normalize(hu: torch.Tensor, intensity: IntensitySpec) -> torch.Tensor:
    """HU -> [0, 1] by the spec's window (values outside are clipped): the one normalisation of ctharmony."""
    span = intensity.hu_max - intensity.hu_min
    return ((hu - intensity.hu_min) / span).clamp(0.0, 1.0)


def denormalize(x: torch.Tensor, intensity: IntensitySpec) -> torch.Tensor:
    """[0, 1] -> HU (the inverse of :func:`normalize` inside the window)."""
    return x * (intensity.hu_max - intensity.hu_min) + intensity.hu_min


def pad_to_multiple(x: torch.Tensor, multiple: int, dims: int = 2) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Replicate-pad the last ``dims`` sizes up to a multiple; returns the padded tensor and the original sizes."""
    sizes = tuple(x.shape[-dims:])
    pads = [(-n) % multiple for n in sizes]
    if any(pads):
        spec: list[int] = []
        for pad in reversed(pads):  # F.pad lists the last dimension first
            spec += [0, pad]
        x = F.pad(x, spec, mode="replicate")
    return x, sizes


class HUModule(nn.Module):
    """Base of every model the pipeline runs: subclasses set ``kind``, ``intensity`` and define ``predict``.

    Attributes:
        kind: ``"harmonizer"`` (HU -> HU) or ``"segmenter"`` (HU -> liver probability).
        intensity: the HU window the network was trained with.
        dims: 2 (slices) or 3 (whole volume).
        size_multiple: spatial sizes the network needs.
        output: a segmenter's raw output, ``"logits"`` or ``"probability"``.
    """

    kind: str = "segmenter"
    intensity: IntensitySpec = IntensitySpec()
    dims: int = 2
    size_multiple: int = 1
    output: str = "logits"

    def pre_process(self, hu: torch.Tensor) -> torch.Tensor:
        """HU -> the network's input: window, min-max to [0, 1], replicate-pad to ``size_multiple``."""
        rank = self.dims + 2
        if hu.ndim != rank or hu.shape[1] != 1:
            layout = "(N, 1, H, W) HU slices" if self.dims == 2 else "(1, 1, Z, H, W) HU volume"
            raise ValueError(f"{type(self).__name__} expects {layout}, got shape {tuple(hu.shape)}")
        return pad_to_multiple(normalize(hu.float(), self.intensity), self.size_multiple, self.dims)[0]

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The network on its input (logits, probability or normalised image)."""
        raise NotImplementedError

    def post_process(self, y: torch.Tensor, hu: torch.Tensor) -> torch.Tensor:
        """Crop to ``hu``'s size; a segmenter's logits -> probability, a harmonizer's output -> HU."""
        crop = (Ellipsis, *(slice(0, n) for n in hu.shape[-self.dims:]))
        y = y[crop]
        if self.kind == "segmenter":
            return torch.sigmoid(y) if self.output == "logits" else y
        return denormalize(y, self.intensity)

    def forward(self, hu: torch.Tensor) -> torch.Tensor:
        return self.post_process(self.predict(self.pre_process(hu)), hu)

    @property
    def has_features(self) -> bool:
        """Whether :meth:`features` is available (the perceptual loss can use this model)."""
        return False

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature maps of a network input (``pre_process`` output, values in [0, 1])."""
        raise NotImplementedError(f"{type(self).__name__} exposes no features")

    @property
    def info(self) -> dict[str, Any]:
        raise NotImplementedError
