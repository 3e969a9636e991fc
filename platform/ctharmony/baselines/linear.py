"""Per-protocol linear HU recalibration to the reference protocol: fit ``a * hu + b``, apply it per series.

- fit: :func:`fit_linear_coefficients` solves least squares per protocol on ``(input, reference)`` pairs
  of the same studies (same geometry), streamed one pair at a time;
- apply: :class:`LinearRecalibrationBaseline` maps a series of protocol P by P's coefficients; protocols
  it was not fitted on (the reference, unknown ones) pass through unchanged. It needs the series'
  protocol (``needs_protocol``): call ``model(hu, protocol=P)`` or ``model.for_protocol(P)(hu)``. Saved
  as a small ``.json``.

Example:
    >>> import numpy as np
    >>> fit_linear_coefficients({"M40": [(np.array([0.0, 100.0]), np.array([10.0, 60.0]))]}, fit_range=None)
    {'M40': (0.5, 10.0)}
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ctharmony.baselines.base import BASELINE_PREFIX, Baseline, ProtocolBound, as_numpy

log = logging.getLogger(__name__)
LINEAR_NAME = BASELINE_PREFIX + "linear-recalibration"


class _Moments:
    """Running means and centred sums of squares / products of paired samples (Chan et al. merge)."""

    def __init__(self) -> None:
        self.n, self.mean_x, self.mean_y, self.sxx, self.sxy = 0, 0.0, 0.0, 0.0, 0.0

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        m = int(x.size)
        if m == 0:
            return
        x, y = x.astype(np.float64), y.astype(np.float64)
        mx, my = float(x.mean()), float(y.mean())
        sxx, sxy = float(((x - mx) ** 2).sum()), float(((x - mx) * (y - my)).sum())
        n, total = self.n, self.n + m
        dx, dy = mx - self.mean_x, my - self.mean_y
        self.sxx += sxx + dx * dx * n * m / total
        self.sxy += sxy + dx * dy * n * m / total
        self.mean_x += dx * m / total
        self.mean_y += dy * m / total
        self.n = total


def fit_linear_coefficients(pairs: Mapping[str, Iterable[tuple[Any, Any]]],
                            fit_range: tuple[float, float] | None = (-300.0, 500.0)) -> dict[str, tuple[float, float]]:
    """Least-squares ``(a, b)`` per protocol on ``(input_hu, reference_hu)`` pairs of the same studies.

    ``fit_range`` keeps voxels whose reference HU lies in it (soft tissue by default, where the
    reconstructions differ; air is -1000 HU in all of them). None keeps all voxels.

    Raises:
        ValueError: a pair differs in size, or a protocol has too few distinct voxels (names the protocol).
    """
    coefficients: dict[str, tuple[float, float]] = {}
    for protocol, protocol_pairs in pairs.items():
        moments = _Moments()
        for source, target in protocol_pairs:  # streamed: one pair in memory at a time
            x, y = as_numpy(source)[0].ravel(), as_numpy(target)[0].ravel()
            if x.shape != y.shape:
                raise ValueError(f"{protocol}: a training pair differs in size ({x.size} vs {y.size})")
            keep = np.isfinite(x) & np.isfinite(y)
            if fit_range is not None:
                keep &= (y >= fit_range[0]) & (y <= fit_range[1])
            moments.add(x[keep], y[keep])
        if moments.n < 2 or moments.sxx <= 0:
            raise ValueError(f"{protocol}: too few distinct voxels to fit a linear recalibration")
        a = moments.sxy / moments.sxx
        coefficients[protocol] = (float(a), float(moments.mean_y - a * moments.mean_x))
    return coefficients


class LinearRecalibrationBaseline(Baseline):
    """Per-protocol linear HU map ``a * hu + b`` to the reference protocol; identity where not fitted."""

    name = LINEAR_NAME
    needs_protocol = True

    def __init__(self, coefficients: Mapping[str, tuple[float, float]] | None = None) -> None:
        super().__init__()
        self.coefficients = {p: (float(a), float(b)) for p, (a, b) in (coefficients or {}).items()}

    def fit(self, pairs: Mapping[str, Iterable[tuple[Any, Any]]],
            fit_range: tuple[float, float] | None = (-300.0, 500.0)) -> LinearRecalibrationBaseline:
        """Add the coefficients of :func:`fit_linear_coefficients` (same arguments); returns self."""
        self.coefficients.update(fit_linear_coefficients(pairs, fit_range))
        return self

    def for_protocol(self, protocol: str) -> torch.nn.Module:
        """A one-argument module for series of ``protocol`` (what an ``HUModel`` looks like)."""
        return ProtocolBound(self, protocol)

    def forward(self, hu: Any, protocol: str | None = None) -> Any:
        if protocol is None:
            raise ValueError("linear recalibration is per protocol: call model(hu, protocol=P) or "
                             "model.for_protocol(P)(hu)")
        array, back = as_numpy(hu)
        if protocol not in self.coefficients:
            log.info("linear recalibration: no fit for protocol %r, passing it through unchanged", protocol)
            return back(array.copy())
        a, b = self.coefficients[protocol]
        return back((a * array + b).astype(np.float32))

    def _params(self) -> Any:
        return {p: [round(a, 6), round(b, 4)] for p, (a, b) in sorted(self.coefficients.items())}

    def save(self, path: str | Path) -> Path:
        """Write the coefficients as a small ``.json``."""
        path = Path(path)
        doc = {"kind": self.name, "coefficients": {p: {"a": a, "b": b} for p, (a, b) in self.coefficients.items()}}
        path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> LinearRecalibrationBaseline:
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls({p: (c["a"], c["b"]) for p, c in doc["coefficients"].items()})
        except (OSError, KeyError, ValueError, TypeError) as err:
            raise ValueError(f"cannot read linear-recalibration baseline {path}: {err}") from err
