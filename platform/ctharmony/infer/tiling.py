"""Slice inference helpers: device choice, mixed precision, slice batches and tiling of large matrices.

A model sees ``(N, 1, H, W)`` HU slices; :func:`predict_slices` feeds a whole volume through it in
batches of ``batch_slices`` and, when a slice is larger than ``tile`` pixels on a side, in overlapping
tiles whose borders (``overlap`` pixels) are discarded, so a 1024 x 1024 matrix runs through a network
trained on 512 x 512 patches without seams (exact for receptive fields up to ``overlap``).

Example:
    >>> import torch
    >>> identity = torch.nn.Identity()
    >>> out = predict_slices(identity, np.ones((3, 40, 40), np.float32), tile=16, overlap=4)
    >>> out.shape, float(out.mean())
    ((3, 40, 40), 1.0)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


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


def predict_slices(
    model,
    volume: np.ndarray,
    *,
    batch_slices: int = 8,
    device=None,
    amp: bool = False,
    tile: int | None = None,
    overlap: int = 32,
) -> np.ndarray:
    """Map a volume ``(z, y, x)`` slice by slice through ``model``; returns float32 ``(z, y, x)``.

    Args:
        model: a module mapping ``(N, 1, H, W)`` float32 to ``(N, 1, H, W)`` (an HUModel).
        volume: the slices (HU).
        batch_slices: slices per forward pass.
        device: a ``torch.device`` (default: the model's).
        amp: float16 autocast (CUDA only; ignored on CPU).
        tile: largest side fed at once; larger slices are tiled (None: never tile).
        overlap: margin discarded on each inner tile border.
    """
    import torch

    volume = np.asarray(volume, dtype=np.float32)
    if volume.ndim != 3:
        raise ValueError(f"expected a (z, y, x) volume, got shape {volume.shape}")
    if device is None:
        device = next(iter(model.parameters()), torch.empty(0)).device
    use_amp = bool(amp) and device.type == "cuda"
    out = np.empty(volume.shape, dtype=np.float32)

    def forward(x):
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=use_amp):
            return model(x)

    with torch.inference_mode():
        for start in range(0, volume.shape[0], max(1, batch_slices)):
            chunk = torch.from_numpy(volume[start : start + batch_slices, None].copy()).to(device)  # writable
            pred = forward(chunk) if tile is None else predict_tiled(forward, chunk, tile, overlap)
            out[start : start + chunk.shape[0]] = pred[:, 0].float().cpu().numpy()
    return out
