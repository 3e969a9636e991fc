"""Correlated CT noise shaped by a noise power spectrum (NPS), and its measurement.

FBP noise has a ramp-times-apodisation NPS, ``NPS(f) ~ f * exp(-(f / f_k)^2)``, peaking at
``f_k / sqrt(2)`` (the reconstruction kernel sets ``f_k``). Iterative reconstruction removes mostly high
frequencies: its noise is the same realisation passed through a low-pass ``1 / (1 + (f / f_ir)^2)``,
which lowers the SD and moves the NPS peak down (the "blotchy" texture). Noise is white along z
(contiguous slices of the slice thickness). Scaling is analytic (expected SD), never per sample.

Example:
    >>> import numpy as np
    >>> n = shaped_noise(np.random.default_rng(0), (4, 64, 64), pixel_mm=1.0, peak_lp_mm=0.3)
    >>> 0.9 < float(n.std()) < 1.1
    True
"""

from __future__ import annotations

import numpy as np


def _radial_frequency(shape: tuple[int, int], pixel_mm: float) -> np.ndarray:
    """|f| in cycles/mm on the rfft2 grid of an image of ``shape``."""
    fy = np.fft.fftfreq(shape[0], d=pixel_mm)[:, None]
    fx = np.fft.rfftfreq(shape[1], d=pixel_mm)[None, :]
    return np.sqrt(fy**2 + fx**2)


def effective_peak(peak_lp_mm: float, pixel_mm: float) -> float:
    """The NPS peak used on this grid: the kernel's, capped at half the Nyquist frequency."""
    return min(peak_lp_mm, 0.5 * 0.5 / pixel_mm)


def fbp_amplitude(shape: tuple[int, int], pixel_mm: float, peak_lp_mm: float) -> np.ndarray:
    """sqrt(NPS) of FBP noise on the rfft2 grid, scaled so the expected pixel SD is 1."""
    f = _radial_frequency(shape, pixel_mm)
    fk = effective_peak(peak_lp_mm, pixel_mm) * np.sqrt(2.0)
    amplitude = np.sqrt(f * np.exp(-((f / fk) ** 2)))
    return amplitude / _rms_gain(amplitude, shape)


def ir_filter(shape: tuple[int, int], pixel_mm: float, peak_lp_mm: float, strength: float = 0.55) -> np.ndarray:
    """Low-pass transfer of iterative reconstruction; ``strength`` sets the cut-off below the FBP peak."""
    f = _radial_frequency(shape, pixel_mm)
    cutoff = effective_peak(peak_lp_mm, pixel_mm) * (1.0 - strength) / 0.5
    return 1.0 / (1.0 + (f / cutoff) ** 2)


def _rms_gain(transfer: np.ndarray, shape: tuple[int, int]) -> float:
    """Expected output SD of white unit noise filtered by ``transfer`` (an rfft2-grid array)."""
    weights = np.full(transfer.shape, 2.0)
    weights[:, 0] = 1.0
    if shape[1] % 2 == 0:
        weights[:, -1] = 1.0
    return float(np.sqrt((weights * transfer**2).sum() / (shape[0] * shape[1])))


def filter_noise(white: np.ndarray, transfer: np.ndarray) -> np.ndarray:
    """Apply an rfft2-grid ``transfer`` to each slice of ``white`` (z, y, x); float32 out."""
    spectrum = np.fft.rfft2(white, axes=(-2, -1))
    spectrum *= transfer
    return np.fft.irfft2(spectrum, s=white.shape[-2:], axes=(-2, -1)).astype(np.float32)


def shaped_noise(rng: np.random.Generator, shape: tuple[int, int, int], pixel_mm: float,
                 peak_lp_mm: float) -> np.ndarray:
    """Unit-SD FBP-textured noise (z, y, x), float32."""
    white = rng.standard_normal(shape, dtype=np.float32)
    return filter_noise(white, fbp_amplitude(shape[1:], pixel_mm, peak_lp_mm))


def ir_noise(fbp_noise: np.ndarray, pixel_mm: float, peak_lp_mm: float, reduction: float) -> np.ndarray:
    """IR noise from the same realisation as ``fbp_noise``: SD scaled by ``1 - reduction``, peak lower."""
    shape = fbp_noise.shape[1:]
    transfer = ir_filter(shape, pixel_mm, peak_lp_mm)
    gain = _rms_gain(fbp_amplitude(shape, pixel_mm, peak_lp_mm) * transfer, shape)
    return filter_noise(fbp_noise, transfer * ((1.0 - reduction) / gain))
