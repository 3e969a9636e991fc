"""Perceptual feature extractors: VGG19 conv5_4 (local ImageNet weights) or the reference segmenter.

- :class:`VGG19Conv54`: torchvision's VGG19 ``features`` layout up to conv5_4 (the 16th convolution,
  ``features.34``, before its ReLU), written out here so torchvision is not needed. ImageNet weights
  cannot be downloaded: :func:`load_vgg19_conv54` reads a torchvision-format state dict (keys
  ``features.<i>.weight``/``bias``; a full ``vgg19`` state dict works) from a file the user names.
- :class:`SegmenterEncoder`: the features of the trained reference segmenter (the deepest encoder map of
  :class:`~ctharmony.models.unet.UNet2D`, or any segmenter exposing ``features(x)``) — needs no
  download and measures what matters here.

Both take (N, 1, H, W) images in [0, 1], are frozen (no parameter requires grad) and stay in eval.

Example:
    >>> import torch
    >>> from ctharmony.models.unet import UNet2D
    >>> extractor = SegmenterEncoder(UNet2D(channels=4, depth=2))
    >>> extractor(torch.zeros(1, 1, 16, 16)).shape
    torch.Size([1, 8, 8, 8])
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

# torchvision's VGG19 ("E") configuration; "M" is a 2x2 max-pool.
VGG19_LAYOUT = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512,
)
CONV5_4_INDEX = 34  # features.34 in torchvision's numbering
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _Frozen(nn.Module):
    def freeze(self) -> None:
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> _Frozen:  # always eval: no dropout/norm updates
        return super().train(False)


class VGG19Conv54(_Frozen):
    """VGG19 ``features[:35]``: grey [0, 1] -> RGB, ImageNet-normalised -> conv5_4 (pre-ReLU)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for item in VGG19_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, int(item), 3, padding=1), nn.ReLU(inplace=True)]
                cin = int(item)
        self.features = nn.Sequential(*layers[: CONV5_4_INDEX + 1])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rgb = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        return self.features((rgb - self.mean) / self.std)


def load_vgg19_conv54(weights: str | Path | None) -> VGG19Conv54:
    """VGG19 up to conv5_4 with the ImageNet weights in ``weights`` (torchvision state-dict format).

    Raises:
        FileNotFoundError: no path given, or the file does not exist (nothing is downloaded).
        ValueError: the file is not a torchvision VGG19 state dict.
    """
    hint = (
        "VGG19 ImageNet weights are never downloaded: save torchvision's vgg19 state dict "
        "(e.g. vgg19-dcbb9e9d.pth) locally and set loss.vgg19_weights=<path>, or use "
        "loss.perceptual_net=segmenter (no download needed)"
    )
    if weights is None or str(weights) == "":
        raise FileNotFoundError(f"no VGG19 weights file given; {hint}")
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"VGG19 weights file {path} not found; {hint}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"cannot read VGG19 weights {path}: {err}") from err
    if not isinstance(state, dict):
        raise ValueError(f"VGG19 weights {path} hold a {type(state).__name__}, not a state dict")
    net = VGG19Conv54()
    wanted = net.features.state_dict().keys()
    picked = {k: state.get(f"features.{k}") for k in wanted}
    missing = sorted(k for k, v in picked.items() if v is None)
    if missing:
        raise ValueError(f"VGG19 weights {path} lack features.{missing[0]} (and {len(missing) - 1} more): "
                         "not a torchvision vgg19 state dict")
    try:
        net.features.load_state_dict(picked)
    except RuntimeError as err:
        raise ValueError(f"VGG19 weights {path} do not fit VGG19's layout: {err}") from err
    net.freeze()
    return net


class SegmenterEncoder(_Frozen):
    """Features of a (trained) segmenter; a frozen copy.

    ``segmenter`` is either a network with ``encode(x)`` (the U-Net: its deepest encoder map) or any
    segmenter of the model interface that exposes ``features(x)`` (``has_features``; e.g. ctharmony's
    ``HUModel`` or a user's TorchScript module exporting ``features`` with ``@torch.jit.export``). ``x`` is
    the segmenter's network input: images in [0, 1] by its own HU window. Gradients must flow through it,
    so an ONNX segmenter cannot serve (use VGG19 then).
    """

    def __init__(self, segmenter: nn.Module) -> None:
        super().__init__()
        import copy

        if not (callable(getattr(segmenter, "encode", None)) or getattr(segmenter, "has_features", False)):
            raise ValueError(f"{type(segmenter).__name__} exposes neither encode(x) nor features(x): it cannot "
                             "serve as a perceptual extractor (use loss.perceptual_net=vgg19)")
        self.unet = copy.deepcopy(segmenter)
        self.freeze()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if callable(getattr(self.unet, "encode", None)):
            return self.unet.encode(x)[-1]
        return self.unet.features(x)
