"""Slice inference helpers: device choice, filling the GPU, slice batches and tiling of large matrices.

A model sees ``(N, 1, H, W)`` HU slices; :func:`predict_slices` feeds a whole volume through it in
batches of ``batch_slices`` and, when a slice is larger than ``tile`` pixels on a side, in overlapping
tiles whose borders (``overlap`` pixels) are discarded, so a 1024 x 1024 matrix runs through a network
trained on 512 x 512 patches without seams (exact for receptive fields up to ``overlap``).

On CUDA: mixed precision (``bf16`` where the GPU supports it, else ``fp16``, whose batches are rerun in
fp32 if they overflow), channels-last weights and optional ``torch.compile`` (:func:`prepare_model`,
falling back to eager when compiling fails), batches read from pinned host memory with asynchronous
copies both ways (the host prepares batch i+1 while the GPU runs batch i), and a batch size chosen from
free GPU memory (:func:`auto_batch_slices`). On CPU the predictors choose bf16 and channels-last for
ctharmony's networks where the CPU computes bf16 natively (:mod:`ctharmony.infer.cpu_precision`); the
functions here run the precision they are given.

Example:
    >>> import torch
    >>> identity = torch.nn.Identity()
    >>> out = predict_slices(identity, np.ones((3, 40, 40), np.float32), tile=16, overlap=4)
    >>> out.shape, float(out.mean())
    ((3, 40, 40), 1.0)
"""

from __future__ import annotations

import logging
import math
import weakref
from collections.abc import Callable

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_BATCH_SLICES = 8  # CPU, or when GPU memory cannot be probed
MAX_AUTO_BATCH = 256
_AUTO_BATCH: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {(h, w, precision): slices}


def select_device(device: str | None = None):  # -> torch.device
    """The requested device, else CUDA when present, else CPU."""
    import torch

    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` with ``overlap`` margins kept aside."""
    if length <= tile:
        return [0]
    if tile <= 2 * overlap:
        raise ValueError(f"tile ({tile}) must exceed twice the overlap ({overlap})")
    step = tile - 2 * overlap
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def predict_tiled(forward: Callable, x, tile: int, overlap: int):
    """Run ``forward`` over ``x`` (N, C, H, W) in tiles, stitching the tiles' interiors."""
    import torch

    height, width = x.shape[-2:]
    if height <= tile and width <= tile:
        return forward(x)
    out = None
    tile_h, tile_w = min(tile, height), min(tile, width)
    for y0 in tile_starts(height, tile_h, overlap):
        for x0 in tile_starts(width, tile_w, overlap):
            pred = forward(x[..., y0 : y0 + tile_h, x0 : x0 + tile_w])
            if out is None:
                out = torch.empty((*pred.shape[:-2], height, width), dtype=pred.dtype, device=pred.device)
            keep_y0 = y0 + (overlap if y0 > 0 else 0)
            keep_y1 = y0 + tile_h - (overlap if y0 + tile_h < height else 0)
            keep_x0 = x0 + (overlap if x0 > 0 else 0)
            keep_x1 = x0 + tile_w - (overlap if x0 + tile_w < width else 0)
            out[..., keep_y0:keep_y1, keep_x0:keep_x1] = pred[
                ..., keep_y0 - y0 : keep_y1 - y0, keep_x0 - x0 : keep_x1 - x0
            ]
    return out


def precision_name(amp: bool | str | None, device) -> str:
    """The precision a forward pass runs in: ``"bf16"``, ``"fp16"`` or ``"fp32"``.

    ``None``/``True``/``"auto"``: bf16 on a CUDA device that supports it, fp16 on other CUDA devices,
    fp32 on CPU (the predictors resolve a CPU's ``auto`` per model: :mod:`ctharmony.infer.cpu_precision`).
    ``False``/``"fp32"``: fp32. ``"bf16"``/``"fp16"``: as asked (on CPU too).
    """
    import torch

    if amp is False or amp in ("fp32", "off"):
        return "fp32"
    if amp in ("bf16", "fp16"):
        return str(amp)
    if amp not in (None, True, "auto"):
        raise ValueError(f"precision must be auto, bf16, fp16 or fp32, got {amp!r}")
    if getattr(device, "type", str(device)) != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


class CompiledWithFallback:
    """``torch.compile(model)`` that falls back to the eager model (once, with a warning) if compiling or
    running the compiled graph fails. Other attributes are the eager model's."""

    def __init__(self, model) -> None:
        import torch

        self.eager = model
        self.compiled = None
        try:
            self.compiled = torch.compile(model, dynamic=None)
        except Exception as err:  # noqa: BLE001 - e.g. no compiler backend on this platform
            log.warning("torch.compile unavailable (%s: %s): running eager", type(err).__name__, err)

    def __call__(self, x):
        if self.compiled is not None:
            try:
                return self.compiled(x)
            except Exception as err:  # noqa: BLE001 - any compile/runtime failure of the graph
                log.warning("compiled model failed (%s: %s): running eager from now on", type(err).__name__, err)
                self.compiled = None
        return self.eager(x)

    def __getattr__(self, name: str):
        return getattr(self.eager, name)


def prepare_model(model, device, *, channels_last: bool = False, compile: bool = False):
    """Move ``model`` to ``device`` in eval mode, channels-last weights if asked, compiled if asked.

    Channels-last only changes the weights' layout (a one-channel input is the same in both layouts); it
    lets cuDNN pick its NHWC (tensor-core) kernels. Returns the model (or its compiled wrapper).
    """
    import torch

    model = model.to(device).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compile and not getattr(model, "needs_protocol", False):
        return CompiledWithFallback(model)
    return model


def batch_from_memory(free_bytes: int, per_slice_bytes: int, *, fraction: float = 0.6,
                      cap: int = MAX_AUTO_BATCH) -> int:
    """Slices per batch that use at most ``fraction`` of ``free_bytes`` (at least 1, at most ``cap``).

    Example:
        >>> batch_from_memory(10 * 2**30, 2**28)
        24
    """
    if per_slice_bytes <= 0:
        return cap
    return int(max(1, min(cap, math.floor(free_bytes * fraction / per_slice_bytes))))


def auto_batch_slices(model, height: int, width: int, device, precision: str = "fp32") -> int:
    """A batch size for ``(height, width)`` slices from free GPU memory, measured once per model and shape.

    A forward pass of 2 slices measures the peak memory per slice; :func:`batch_from_memory` turns the
    device's free memory into slices. On CPU: ``DEFAULT_BATCH_SLICES``.
    """
    import torch

    if getattr(device, "type", str(device)) != "cuda":
        return DEFAULT_BATCH_SLICES
    key = (height, width, precision)
    target = getattr(model, "eager", model)  # the weak key: the model itself, not a wrapper
    try:
        cache = _AUTO_BATCH.setdefault(target, {})
    except TypeError:  # not weak-referenceable
        cache = {}
    if key not in cache:
        probe = torch.zeros((2, 1, height, width), dtype=torch.float32, device=device)
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        with torch.inference_mode(), _autocast(device, precision):
            model(probe)
        per_slice = (torch.cuda.max_memory_allocated(device) - base) // 2
        free, _total = torch.cuda.mem_get_info(device)
        cache[key] = batch_from_memory(free, int(per_slice))
        log.info("batch of %d slices of %dx%d (%s): %.0f MiB per slice, %.0f MiB free", cache[key], height, width,
                 precision, per_slice / 2**20, free / 2**20)
    return cache[key]


def _autocast(device, precision: str):
    import torch

    kind = getattr(device, "type", str(device))
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(device_type=kind, dtype=dtype or torch.float32, enabled=dtype is not None)


def predict_slices(
    model,
    volume: np.ndarray,
    *,
    batch_slices: int | None = DEFAULT_BATCH_SLICES,
    device=None,
    amp: bool | str | None = False,
    tile: int | None = None,
    overlap: int = 32,
) -> np.ndarray:
    """Map a volume ``(z, y, x)`` slice by slice through ``model``; returns float32 ``(z, y, x)``.

    Args:
        model: a module mapping ``(N, 1, H, W)`` float32 to ``(N, 1, H, W)`` (an HUModel).
        volume: the slices (HU).
        batch_slices: slices per forward pass (None: from free GPU memory on CUDA, 8 on CPU).
        device: a ``torch.device`` (default: the model's).
        amp: precision, see :func:`precision_name` (``False``: fp32).
        tile: largest side fed at once; larger slices are tiled (None: never tile).
        overlap: margin discarded on each inner tile border.
    """
    import torch

    volume = np.asarray(volume, dtype=np.float32)
    if volume.ndim != 3:
        raise ValueError(f"expected a (z, y, x) volume, got shape {volume.shape}")
    if device is None:
        params = getattr(model, "parameters", None)
        device = next(iter(params()), torch.empty(0)).device if params else torch.device("cpu")
    precision = precision_name(amp, device)
    cuda = device.type == "cuda"
    if not batch_slices:
        side_h, side_w = (min(tile or n, n) for n in volume.shape[1:])
        batch_slices = auto_batch_slices(model, side_h, side_w, device, precision) if volume.size else 1
    out = np.empty(volume.shape, dtype=np.float32)

    def run(x, mode):
        with _autocast(device, mode):
            pred = model(x) if tile is None else predict_tiled(model, x, tile, overlap)
        pred = pred[:, 0].float()
        if mode == "fp16" and not bool(torch.isfinite(pred).all()):  # fp16 overflow: redo this batch in fp32
            log.warning("fp16 overflow in a batch: rerun in fp32")
            return run(x, "fp32")
        return pred

    pending = []
    with torch.inference_mode():
        for start in range(0, volume.shape[0], max(1, batch_slices)):
            chunk = torch.from_numpy(volume[start : start + batch_slices, None].copy())  # writable
            if cuda:
                chunk = chunk.pin_memory().to(device, non_blocking=True)
            pred = run(chunk.to(device), precision)  # a no-op move when already there
            if cuda:
                pending.append((start, pred.to("cpu", non_blocking=True)))  # lands in pinned memory
            else:
                out[start : start + pred.shape[0]] = pred.numpy()
        if cuda:
            torch.cuda.synchronize(device)
            for start, pred in pending:
                out[start : start + pred.shape[0]] = pred.numpy()
    return out
