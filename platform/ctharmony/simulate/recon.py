"""Reconstruction: filtered back-projection with a kernel, and an iterative (TV-regularised) reconstruction.

Sinograms are water-corrected line integrals in cm of water (:func:`ctharmony.simulate.forward.measure`);
images come out in HU (water 0, air -1000). The iterative reconstruction alternates data consistency
(the FBP of the residual ``y - A x``, a preconditioned gradient step) with total-variation denoising of
strength ``weight_hu`` (Chambolle's algorithm, scikit-image): the fixed point fits the data where the
data are strong and flattens noise, which lowers the noise and moves its power spectrum to lower
frequencies (the blotchy IR texture). All strengths are iterated together, batched in the projector.

Example:
    >>> from ctharmony.simulate.projector import Geometry, make_projector
    >>> proj = make_projector("skimage", Geometry(32, 48))
    >>> water = proj.forward(np.ones((1, 32, 32), np.float32)) * 0.1  # 1 mm pixels: 0.1 cm each
    >>> hu = fbp(proj, water, [Kernel("B", 0.5)], pixel_mm=1.0)
    >>> abs(float(hu[0, 16, 16])) < 20, iterative(proj, water, Kernel("B", 0.5), 1.0, [5.0, 10.0]).shape
    (True, (2, 1, 32, 32))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ctharmony.scanmodel.kernels import Kernel
from ctharmony.simulate.projector import Projector, fbp_scale, filter_frequencies, ramp_filter


def fbp_relative(projector: Projector, sinograms: np.ndarray, kernels: Sequence[Kernel], pixel_mm: float) -> np.ndarray:
    """(C, views, channels) cm of water -> (C, size, size) attenuation relative to water (water = 1)."""
    if len(kernels) != len(sinograms):
        raise ValueError(f"fbp: {len(kernels)} kernels for {len(sinograms)} sinograms")
    freqs = filter_frequencies(projector.geometry.channels)
    windows = np.stack([k.window(freqs, pixel_mm) for k in kernels])[:, None, :]
    filtered = ramp_filter(np.asarray(sinograms, np.float32) / np.float32(pixel_mm / 10.0), windows)
    return projector.back(filtered) * np.float32(fbp_scale(projector))


def to_hu(relative: np.ndarray) -> np.ndarray:
    return (1000.0 * (relative - 1.0)).astype(np.float32)


def fbp(projector: Projector, sinograms: np.ndarray, kernels: Sequence[Kernel], pixel_mm: float) -> np.ndarray:
    """FBP images in HU, one per sinogram and kernel."""
    return to_hu(fbp_relative(projector, sinograms, kernels, pixel_mm))


def iterative(projector: Projector, sinograms: np.ndarray, kernel: Kernel, pixel_mm: float,
              weights_hu: Sequence[float], iterations: int = 2, start: np.ndarray | None = None) -> np.ndarray:
    """TV-regularised iterative reconstructions (HU), (strengths, z, size, size), of (z, views, channels) sinograms.

    ``start`` is the FBP image stack (relative units, (z, size, size)) to start from (computed when not given).
    """
    from skimage.restoration import denoise_tv_chambolle

    if iterations < 1:
        raise ValueError(f"iterative: iterations must be >= 1, got {iterations}")
    y0 = np.asarray(sinograms, np.float32)
    z, n = len(y0), len(weights_hu)
    x0 = fbp_relative(projector, y0, [kernel] * z, pixel_mm) if start is None else np.asarray(start, np.float32)
    x = np.concatenate([x0] * n)
    y = np.concatenate([y0] * n)
    tv = [w / 1000.0 for w in weights_hu for _ in range(z)]
    cm = np.float32(pixel_mm / 10.0)

    def denoise(images: np.ndarray) -> np.ndarray:
        return np.stack([denoise_tv_chambolle(xi, weight=w) for xi, w in zip(images, tv, strict=True)]).astype(
            np.float32)

    for _ in range(iterations):
        x = denoise(x)
        x = x + fbp_relative(projector, y - projector.forward(x) * cm, [kernel] * (n * z), pixel_mm)
    return to_hu(denoise(x)).reshape(n, z, *x.shape[1:])
