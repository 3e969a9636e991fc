"""A user's own network (TorchScript or ONNX) behind the model interface, with its sidecar spec.

:class:`ExternalModel` wraps any callable network on normalised images with an
:class:`~ctharmony.models.spec.ExternalSpec` (HU window, 2-D or 3-D, logits or probability), so the
conversion pipeline, validation and the perceptual loss run it exactly as they run ctharmony's own
``HUModel``. :class:`OnnxNet` runs an ONNX file with onnxruntime as a (weightless) torch module.

Example:
    >>> import torch
    >>> from ctharmony.models.spec import ExternalSpec, IntensitySpec
    >>> model = ExternalModel(torch.nn.Identity(), ExternalSpec(output="probability",
    ...                       intensity=IntensitySpec(0.0, 100.0)), name="identity", version="1")
    >>> model(torch.full((1, 1, 2, 2), 25.0)).flatten().tolist()
    [0.25, 0.25, 0.25, 0.25]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ctharmony.models.interface import HUModule
from ctharmony.models.spec import ExternalSpec, IntensitySpec


class ExternalModel(HUModule):
    """A network ctharmony did not build, run through ``pre_process`` / ``predict`` / ``post_process``.

    Args:
        net: maps the normalised input (``(N, 1, H, W)``, or ``(1, 1, Z, H, W)`` when ``spec.dims == 3``)
            to logits, a probability, or (a harmonizer) a normalised image of the same size.
        spec: the HU window, dims, output and size multiple (the file's sidecar YAML).
        name, version: what results record (defaults: the file name, a hash of the file).
        source: where the network was loaded from (for messages).
    """

    def __init__(self, net: nn.Module, spec: ExternalSpec, name: str, version: str, source: str = "") -> None:
        super().__init__()
        self.net = net
        self.spec = spec
        self.name, self.version, self.source = name, str(version), source
        self.size_multiple = spec.size_multiple
        self.dims = spec.dims
        self.output = spec.output

    @property
    def kind(self) -> str:  # type: ignore[override]
        return self.spec.kind

    @property
    def intensity(self) -> IntensitySpec:  # type: ignore[override]
        return self.spec.intensity

    @property
    def info(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "version": self.version, "spec": self.name,
                "intensity": {"hu_min": self.intensity.hu_min, "hu_max": self.intensity.hu_max},
                "size_multiple": self.size_multiple, "dims": self.dims}

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @property
    def has_features(self) -> bool:
        return callable(getattr(self.net, "features", None))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The network's own ``features`` method (a TorchScript module exporting one with ``@torch.jit.export``)."""
        if not self.has_features:
            raise NotImplementedError(f"{self.source or self.name} exposes no features(x) method")
        return self.net.features(x)


class OnnxNet(nn.Module):
    """An ONNX file run by onnxruntime, called like a torch module (tensors in and out, on the input's device).

    The session uses CUDA when onnxruntime offers it, else the CPU. Input and output names are the
    graph's first ones; the graph should declare dynamic batch and spatial axes.

    Raises:
        ImportError: onnxruntime is not installed (``pip install onnxruntime``).
        ValueError: the file is not a loadable ONNX graph (names the file).
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        super().__init__()
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise ImportError(f"{path}: ONNX models need onnxruntime (pip install onnxruntime)") from err
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        wanted = ("CUDAExecutionProvider", "CPUExecutionProvider")
        providers = [p for p in wanted if p in ort.get_available_providers()]
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as err:  # onnxruntime raises its own exception types
            raise ValueError(f"{path}: not a loadable ONNX model: {err}") from err
        self.path = str(path)
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().float().cpu().numpy())
        (out, *_rest) = self.session.run(None, {self.input_name: array})
        return torch.from_numpy(np.asarray(out, np.float32)).to(x.device)
