"""What ``--precision auto`` means on a CPU: bf16 where the CPU computes it natively, channels-last weights.

oneDNN runs bf16 convolutions on AVX-512 BF16 or AMX units at 2-3x the fp32 rate (measured on the shipped
networks at 512 x 512: docs/performance.md); without those units bf16 is emulated and slower than fp32, so
``auto`` keeps fp32 there. Channels-last weights let oneDNN pick its blocked NHWC kernels (about 2x on
the shipped networks, in fp32 and bf16 alike).

Both apply to ctharmony's own networks (:class:`~ctharmony.models.hu_model.HUModel`), whose bf16 agreement
with fp32 is tested (``tests/infer/test_infer_cpu_precision.py``: <= 1 HU mean on harmonized phantom
slices, liver masks Dice >= 0.999). A user's TorchScript/ONNX model or a baseline stays fp32 and as
loaded unless ``--precision bf16`` asks. fp32 stays available (``--precision fp32``).

Example:
    >>> import torch
    >>> from ctharmony.models import build
    >>> cpu_auto_precision(torch.nn.Identity())  # not one of ctharmony's networks
    'fp32'
    >>> cpu_auto_precision(build("cpu-small")) == ("bf16" if native_bf16() else "fp32")
    True
"""

from __future__ import annotations

from typing import Any

HU_TOLERANCE = 1.0  # mean |bf16 - fp32| of harmonized HU that bf16 must stay within
DICE_TOLERANCE = 0.999  # Dice of the bf16 liver masks against the fp32 ones


def native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX) and torch's oneDNN can use it."""
    import torch

    try:
        if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
            return False
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):  # a torch build without these probes: stay fp32
        return False


def tuned_network(model: Any) -> bool:
    """Whether ``model`` is one of ctharmony's networks (the ones ``auto`` may run in bf16, channels-last)."""
    from ctharmony.models.hu_model import HUModel

    return isinstance(model, HUModel)


def cpu_auto_precision(model: Any) -> str:
    """``"bf16"`` for ctharmony's networks on a CPU with native bf16, else ``"fp32"``."""
    return "bf16" if tuned_network(model) and native_bf16() else "fp32"
