"""Histogram matching to the reference protocol: fit the reference's pooled quantiles, apply SimpleITK's filter.

- fit: :func:`fit_reference_quantiles` pools (a random sample of) the voxels of the reference
  protocol's volumes and keeps their quantiles;
- apply: :class:`HistogramMatchingBaseline` runs SimpleITK's ``HistogramMatchingImageFilter`` from each
  input to those quantiles; it maps whatever it is given at once (a whole volume, or the slice batch a
  pipeline feeds it, each batch matched on its own). Saved as a small ``.npz``.

Example:
    >>> import numpy as np
    >>> quantiles = fit_reference_quantiles([np.linspace(-100, 100, 1000, dtype=np.float32)], quantiles=5)
    >>> quantiles.tolist()
    [-100.0, -50.0, 0.0, 50.0, 100.0]
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ctharmony.baselines.base import BASELINE_PREFIX, Baseline, as_numpy

HISTOGRAM_NAME = BASELINE_PREFIX + "histogram-matching"


def fit_reference_quantiles(reference_volumes: Iterable[Any], quantiles: int = 2048,
                            max_voxels_per_volume: int = 200_000, seed: int = 0) -> np.ndarray:
    """Quantiles (float32) of the pooled voxels of ``reference_volumes`` (at most ``max_voxels_per_volume`` each).

    Raises:
        ValueError: no reference volume was given.
    """
    rng = np.random.default_rng(seed)
    samples = []
    for volume in reference_volumes:
        flat = as_numpy(volume)[0].ravel()
        if flat.size > max_voxels_per_volume:
            flat = rng.choice(flat, max_voxels_per_volume, replace=False)
        samples.append(flat)
    if not samples:
        raise ValueError("histogram matching: no reference volumes given to fit on")
    pooled = np.concatenate(samples)
    return np.quantile(pooled, np.linspace(0, 1, quantiles)).astype(np.float32)


class HistogramMatchingBaseline(Baseline):
    """Match each input's histogram to the reference protocol's pooled histogram (SimpleITK)."""

    name = HISTOGRAM_NAME

    def __init__(self, reference_quantiles: np.ndarray | None = None, histogram_levels: int = 1024,
                 match_points: int = 64, threshold_at_mean: bool = True) -> None:
        super().__init__()
        self.reference_quantiles = None if reference_quantiles is None else np.asarray(reference_quantiles,
                                                                                      np.float32)
        self.histogram_levels = int(histogram_levels)
        self.match_points = int(match_points)
        self.threshold_at_mean = bool(threshold_at_mean)

    def fit(self, reference_volumes: Iterable[Any], **kwargs: Any) -> HistogramMatchingBaseline:
        """Set the reference quantiles with :func:`fit_reference_quantiles` (same keywords); returns self."""
        self.reference_quantiles = fit_reference_quantiles(reference_volumes, **kwargs)
        return self

    def forward(self, hu: Any, protocol: str | None = None) -> Any:
        import SimpleITK as sitk

        if self.reference_quantiles is None:
            raise RuntimeError("HistogramMatchingBaseline is not fitted")
        array, back = as_numpy(hu)
        volume = array.reshape((-1, *array.shape[-2:]))  # (N, 1, H, W) -> (N, H, W); (z, y, x) stays
        reference = sitk.GetImageFromArray(self.reference_quantiles.reshape(1, 1, -1))
        matcher = sitk.HistogramMatchingImageFilter()
        matcher.SetNumberOfHistogramLevels(self.histogram_levels)
        matcher.SetNumberOfMatchPoints(self.match_points)
        matcher.SetThresholdAtMeanIntensity(self.threshold_at_mean)
        matched = sitk.GetArrayFromImage(matcher.Execute(sitk.GetImageFromArray(volume), reference))
        return back(matched.reshape(array.shape).astype(np.float32))

    def _params(self) -> Any:
        q = [] if self.reference_quantiles is None else self.reference_quantiles.round(3).tolist()
        return [q, self.histogram_levels, self.match_points, self.threshold_at_mean]

    def save(self, path: str | Path) -> Path:
        """Write the fitted baseline as a small ``.npz``."""
        path = Path(path)
        meta = {"kind": self.name, "histogram_levels": self.histogram_levels,
                "match_points": self.match_points, "threshold_at_mean": self.threshold_at_mean}
        np.savez_compressed(path, reference_quantiles=self.reference_quantiles, meta=json.dumps(meta))
        return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")

    @classmethod
    def load(cls, path: str | Path) -> HistogramMatchingBaseline:
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                quantiles = np.asarray(data["reference_quantiles"], np.float32)
        except (OSError, KeyError, ValueError) as err:
            raise ValueError(f"cannot read histogram-matching baseline {path}: {err}") from err
        return cls(quantiles, meta["histogram_levels"], meta["match_points"], meta["threshold_at_mean"])
