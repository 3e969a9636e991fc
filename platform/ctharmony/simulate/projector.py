"""Parallel-beam projector and back-projector behind one small interface (2-D slices, batched).

Backends (measured on 2 shared cores, 256 x 256 image, 384 views; see ``bench/bench_simulate.py``):

- ``svmbir`` (default, BSD-3): the C / OpenMP system-matrix projector of the svmbir MBIR package; the
  matrix is computed once per geometry and cached on disk (svmbir's own ``~/.cache/svmbir``); a stack
  of C images is projected in one call (about 0.1-0.15 s per image each way);
- ``skimage`` (BSD-3): scikit-image's ``radon`` / unfiltered ``iradon``, the reference (3-5x slower).

odl 1.0 without ASTRA wraps scikit-image (slower still); ASTRA is GPL-3 (not in the default install);
deepinv needs a torchvision built for the installed torch. A GPU backend (e.g. a torch projector) only
has to implement :class:`Projector`.

Units: images in 1/pixel-length units give line integrals in pixel lengths; ``sinogram`` is
(C, views, channels). :meth:`Projector.back` is the adjoint; :func:`fbp_scale` makes filtered
back-projection exact.

Example:
    >>> g = Geometry(size=64, views=96)
    >>> proj = make_projector("skimage", g)
    >>> proj.forward(np.zeros((1, 64, 64), np.float32)).shape
    (1, 96, 91)
"""

from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path
from typing import Protocol

import numpy as np


@dataclasses.dataclass(frozen=True)
class Geometry:
    """Square image of ``size`` pixels, ``views`` angles over [0, pi), ``channels`` detector bins (pixel wide)."""

    size: int
    views: int

    @property
    def channels(self) -> int:
        return int(math.ceil(self.size * math.sqrt(2.0))) | 1

    def angles(self) -> np.ndarray:
        return np.linspace(0.0, math.pi, self.views, endpoint=False)


class Projector(Protocol):
    """Forward and adjoint parallel-beam projection of a stack of 2-D images."""

    geometry: Geometry

    def forward(self, images: np.ndarray) -> np.ndarray:
        """(C, size, size) -> (C, views, channels) line integrals in pixel lengths."""

    def back(self, sinograms: np.ndarray) -> np.ndarray:
        """(C, views, channels) -> (C, size, size), the adjoint of :meth:`forward`."""


class SvmbirProjector:
    """svmbir's system-matrix projector (parallel beam, inscribed-circle region of interest)."""

    def __init__(self, geometry: Geometry, threads: int | None = None, cache: Path | None = None) -> None:

        self.geometry = geometry
        self.threads = threads
        self.cache = str(cache or Path.home() / ".cache" / "svmbir")

    def forward(self, images: np.ndarray) -> np.ndarray:
        import svmbir

        g = self.geometry
        sino = svmbir.project(np.ascontiguousarray(images, np.float32), g.angles(), g.channels, verbose=0,
                              num_threads=self.threads, svmbir_lib_path=self.cache)
        return np.ascontiguousarray(np.transpose(sino, (1, 0, 2)))

    def back(self, sinograms: np.ndarray) -> np.ndarray:
        import svmbir

        g = self.geometry
        sino = np.ascontiguousarray(np.transpose(sinograms, (1, 0, 2)), np.float32)
        return svmbir.backproject(sino, g.angles(), num_rows=g.size, num_cols=g.size, verbose=0,
                                  num_threads=self.threads, svmbir_lib_path=self.cache)


class SkimageProjector:
    """scikit-image ``radon`` / unfiltered ``iradon`` (one image at a time); the reference backend."""

    def __init__(self, geometry: Geometry) -> None:
        self.geometry = geometry

    def forward(self, images: np.ndarray) -> np.ndarray:
        from skimage.transform import radon

        g = self.geometry
        pad = (g.channels - g.size) // 2
        out = []
        for image in images:
            padded = np.pad(np.asarray(image, np.float64), ((pad, g.channels - g.size - pad),) * 2)
            out.append(radon(padded, np.degrees(g.angles()), circle=True).T)
        return np.asarray(out, np.float32)

    def back(self, sinograms: np.ndarray) -> np.ndarray:
        from skimage.transform import iradon

        g = self.geometry
        pad = (g.channels - g.size) // 2
        out = []
        for sino in sinograms:
            image = iradon(np.asarray(sino, np.float64).T, np.degrees(g.angles()), filter_name=None, circle=True)
            # iradon averages over views (scale pi / (2 views)); undo it to get the plain adjoint sum
            out.append(image[pad:pad + g.size, pad:pad + g.size] * (2.0 * g.views / math.pi))
        return np.asarray(out, np.float32)


BACKENDS = {"svmbir": SvmbirProjector, "skimage": SkimageProjector}


def make_projector(name: str, geometry: Geometry) -> Projector:
    """The projector ``name`` (``svmbir`` or ``skimage``) for ``geometry``."""
    try:
        return BACKENDS[name](geometry)
    except KeyError as err:
        raise ValueError(f"unknown projector backend {name!r}; known: {', '.join(BACKENDS)}") from err


def ramp_filter(sinograms: np.ndarray, apodization: np.ndarray | None = None) -> np.ndarray:
    """Ramp-filter each projection (last axis) in the frequency domain, zero-padded to twice its length.

    ``apodization`` is the window on ``np.fft.rfftfreq(pad)`` (cycles per channel) of :func:`filter_frequencies`.
    """
    n = sinograms.shape[-1]
    pad = filter_length(n)
    spectrum = np.fft.rfft(sinograms, n=pad, axis=-1)
    window = _ramp(pad) * (1.0 if apodization is None else apodization)
    return np.fft.irfft(spectrum * window, n=pad, axis=-1)[..., :n].astype(np.float32)


def filter_length(channels: int) -> int:
    return 1 << int(math.ceil(math.log2(2 * channels)))


def filter_frequencies(channels: int) -> np.ndarray:
    """Frequencies (cycles per channel) at which an apodization window is given to :func:`ramp_filter`."""
    return np.fft.rfftfreq(filter_length(channels))


@functools.cache
def _ramp(pad: int) -> np.ndarray:
    """The band-limited ramp (Ram-Lak) of Kak & Slaney, exact in the spatial domain, as a spectrum."""
    n = np.concatenate([np.arange(1, pad // 2 + 1, 2), np.arange(pad // 2 - 1, 0, -2)])
    h = np.zeros(pad)
    h[0] = 0.25
    h[1::2] = -1.0 / (np.pi * n) ** 2
    return 2.0 * np.real(np.fft.rfft(h))


def fbp_scale(projector: Projector) -> float:
    """Factor making ``back(ramp_filter(forward(x)))`` equal ``x``: pi / (2 views) for both backends (a test checks)."""
    return math.pi / (2.0 * projector.geometry.views)
