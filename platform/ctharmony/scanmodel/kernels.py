"""FBP reconstruction kernels: the ramp filter times an apodization window, named as the vendor writes them.

A kernel is ``A(f) = exp(-(f / cutoff)^2) * (1 + enhance * (f / cutoff)^2)`` on the ramp, ``f`` in lp/mm:
``cutoff`` sets the resolution (soft ~0.3, standard ~0.45 lp/mm), ``enhance`` lifts the mid and high
frequencies as sharp (bone, lung) kernels do, which is where their noise comes from.

Example:
    >>> k = Kernel("Br40", cutoff_lp_mm=0.45)
    >>> w = k.window(np.array([0.0, 0.25]), pixel_mm=1.0)
    >>> float(w[0]), round(float(w[1]), 3)
    (1.0, 0.734)
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Kernel:
    """A reconstruction kernel: the vendor's name and its apodization (lp/mm)."""

    name: str
    cutoff_lp_mm: float
    enhance: float = 0.0

    def __post_init__(self) -> None:
        if not self.cutoff_lp_mm > 0 or self.enhance < 0:
            raise ValueError(f"kernel {self.name!r}: cutoff_lp_mm must be > 0 and enhance >= 0")

    def window(self, cycles_per_channel: np.ndarray, pixel_mm: float) -> np.ndarray:
        """The apodization at detector frequencies (cycles per channel; channels are one pixel wide)."""
        r = (np.asarray(cycles_per_channel) / pixel_mm / self.cutoff_lp_mm) ** 2
        return np.exp(-r) * (1.0 + self.enhance * r)
