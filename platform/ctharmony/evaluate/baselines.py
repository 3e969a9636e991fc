"""Simple baselines that convert HU the way the harmonizer does, so the conversion pipeline can run them.

Both are ``torch.nn.Module`` s without weights that take HU slices ``(N, 1, H, W)`` or a volume
``(z, y, x)`` (numpy array or torch tensor) and return HU of the same shape and kind, like an
``HUModel`` of kind "harmonizer": the conversion pipeline's predictors accept them as they are
(``info``, ``.to()``, ``.eval()``). Their names start with ``baseline-`` so that evaluation reports
them beside the GAN (``ctharmony.evaluate.naming``).

- :class:`HistogramMatchingBaseline`: SimpleITK's ``HistogramMatchingImageFilter`` from each input to
  the reference protocol's pooled histogram (stored as its quantiles, an ``.npz`` artifact).
- :class:`LinearRecalibrationBaseline`: per protocol ``a * hu + b`` fitted by least squares on training
  pairs (same study: input series and reference series share geometry), a ``.json`` artifact.
  Protocols it was not fitted on (the reference, unknown ones) pass through unchanged. It needs the
  series' protocol (``needs_protocol``): call ``model(hu, protocol=P)`` or use ``for_protocol(P)``.

Histogram matching maps whatever it is given at once: a whole volume, or the slice batch a pipeline
feeds it (each batch matched on its own).

Example:
    >>> import numpy as np
    >>> lin = LinearRecalibrationBaseline().fit({"M40": [(np.array([0.0, 100.0]), np.array([10.0, 60.0]))]},
    ...                                         fit_range=None)
    >>> lin(np.array([[[200.0]]]), protocol="M40").item()
    110.0
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ctharmony.evaluate.naming import BASELINE_PREFIX

log = logging.getLogger(__name__)

HISTOGRAM_NAME = BASELINE_PREFIX + "histogram-matching"
LINEAR_NAME = BASELINE_PREFIX + "linear-recalibration"


def _as_numpy(hu: Any) -> tuple[np.ndarray, Callable[[np.ndarray], Any]]:
    """HU as a float32 ndarray and a function that turns a result back into the caller's type."""
    if isinstance(hu, torch.Tensor):
        device, dtype = hu.device, hu.dtype
        return hu.detach().cpu().numpy().astype(np.float32), lambda a: torch.from_numpy(a).to(device, dtype)
    return np.asarray(hu, dtype=np.float32), lambda a: a


class _Baseline(torch.nn.Module):
    """What the conversion pipeline expects of a model: a module with ``info`` mapping HU to HU."""

    name = BASELINE_PREFIX + "none"
    kind = "harmonizer"
    needs_protocol = False

    @property
    def version(self) -> str:
        return hashlib.sha256(json.dumps(self._params(), sort_keys=True).encode()).hexdigest()[:12]

    @property
    def info(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "version": self.version, "spec": self.name}

    def _params(self) -> Any:
        raise NotImplementedError


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


class HistogramMatchingBaseline(_Baseline):
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

    def fit(self, reference_volumes: Iterable[np.ndarray], quantiles: int = 2048,
            max_voxels_per_volume: int = 200_000, seed: int = 0) -> HistogramMatchingBaseline:
        """Pool (a random sample of) the voxels of the reference protocol's volumes and keep their quantiles."""
        rng = np.random.default_rng(seed)
        samples = []
        for volume in reference_volumes:
            flat = _as_numpy(volume)[0].ravel()
            if flat.size > max_voxels_per_volume:
                flat = rng.choice(flat, max_voxels_per_volume, replace=False)
            samples.append(flat)
        if not samples:
            raise ValueError("HistogramMatchingBaseline.fit: no reference volumes given")
        pooled = np.concatenate(samples)
        self.reference_quantiles = np.quantile(pooled, np.linspace(0, 1, quantiles)).astype(np.float32)
        return self

    def forward(self, hu: Any, protocol: str | None = None) -> Any:
        import SimpleITK as sitk

        if self.reference_quantiles is None:
            raise RuntimeError("HistogramMatchingBaseline is not fitted")
        array, back = _as_numpy(hu)
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


class LinearRecalibrationBaseline(_Baseline):
    """Per-protocol linear HU map ``a * hu + b`` to the reference protocol; identity where not fitted."""

    name = LINEAR_NAME
    needs_protocol = True

    def __init__(self, coefficients: Mapping[str, tuple[float, float]] | None = None) -> None:
        super().__init__()
        self.coefficients = {p: (float(a), float(b)) for p, (a, b) in (coefficients or {}).items()}

    def fit(self, pairs: Mapping[str, Iterable[tuple[np.ndarray, np.ndarray]]],
            fit_range: tuple[float, float] | None = (-300.0, 500.0)) -> LinearRecalibrationBaseline:
        """Least-squares fit per protocol on ``(input_hu, reference_hu)`` pairs of the same studies.

        ``fit_range`` keeps voxels whose reference HU lies in it (soft tissue by default, where the
        reconstructions differ; air is -1000 HU in all of them). None keeps all voxels.
        """
        for protocol, protocol_pairs in pairs.items():
            moments = _Moments()
            for source, target in protocol_pairs:  # streamed: one pair in memory at a time
                x, y = _as_numpy(source)[0].ravel(), _as_numpy(target)[0].ravel()
                if x.shape != y.shape:
                    raise ValueError(f"{protocol}: a training pair differs in size ({x.size} vs {y.size})")
                keep = np.isfinite(x) & np.isfinite(y)
                if fit_range is not None:
                    keep &= (y >= fit_range[0]) & (y <= fit_range[1])
                moments.add(x[keep], y[keep])
            if moments.n < 2 or moments.sxx <= 0:
                raise ValueError(f"{protocol}: too few distinct voxels to fit a linear recalibration")
            a = moments.sxy / moments.sxx
            self.coefficients[protocol] = (float(a), float(moments.mean_y - a * moments.mean_x))
        return self

    def for_protocol(self, protocol: str) -> torch.nn.Module:
        """A one-argument module for series of ``protocol`` (what an ``HUModel`` looks like)."""
        return _ProtocolBound(self, protocol)

    def forward(self, hu: Any, protocol: str | None = None) -> Any:
        if protocol is None:
            raise ValueError("linear recalibration is per protocol: call model(hu, protocol=P) or "
                             "model.for_protocol(P)(hu)")
        array, back = _as_numpy(hu)
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


class _ProtocolBound(_Baseline):
    """A per-protocol baseline bound to one protocol."""

    def __init__(self, baseline: _Baseline, protocol: str) -> None:
        super().__init__()
        self.baseline, self.protocol = baseline, protocol
        self.name = baseline.name

    def _params(self) -> Any:
        return self.baseline._params()

    def forward(self, hu: Any) -> Any:
        return self.baseline(hu, protocol=self.protocol)


BASELINE_SUFFIXES = (".npz", ".json")


def load_baseline(path: str | Path) -> HistogramMatchingBaseline | LinearRecalibrationBaseline:
    """Load a saved baseline: ``.npz`` = histogram matching, ``.json`` = linear recalibration."""
    suffix = Path(path).suffix.lower()
    if suffix == ".npz":
        return HistogramMatchingBaseline.load(path)
    if suffix == ".json":
        return LinearRecalibrationBaseline.load(path)
    raise ValueError(f"{path}: not a baseline artifact (expected .npz or .json)")


def fit_baselines_from_catalog(
    catalog: str | Path,
    reference_protocol: str = "M80",
    study_uids: Iterable[str] | None = None,
    reader: Callable[[list[str]], Any] | None = None,
) -> tuple[HistogramMatchingBaseline, LinearRecalibrationBaseline]:
    """Fit both baselines on the training studies of a catalog (``status == ok`` series).

    ``reader(files) -> Volume`` defaults to :func:`ctharmony.archive.read_series`; pairs are the series
    of one study with the same shape as its reference series. Volumes are read as they are needed, so
    memory holds one pair at a time (references are read again for each protocol).
    """
    import pandas as pd

    if reader is None:
        from ctharmony.archive import read_series as reader  # type: ignore[attr-defined,no-redef]
    table = pd.read_parquet(catalog)
    table = table[table["status"] == "ok"]
    if study_uids is not None:
        table = table[table["study_uid"].isin(set(study_uids))]
    references: list[list[str]] = []
    pairs: dict[str, list[tuple[list[str], list[str]]]] = {}
    for _study, series in table.groupby("study_uid", sort=True):
        ref_rows = series[series["protocol"] == reference_protocol]
        if ref_rows.empty:
            continue
        ref_files = list(ref_rows.iloc[0]["files"])
        references.append(ref_files)
        for _, row in series[series["protocol"] != reference_protocol].iterrows():
            if int(row.get("slices", 0) or 0) in (0, int(ref_rows.iloc[0].get("slices", 0) or 0)):
                pairs.setdefault(row["protocol"], []).append((list(row["files"]), ref_files))
    if not references:
        raise ValueError(f"{catalog}: no study has a {reference_protocol} series to fit the baselines on")

    def read_pairs(items: list[tuple[list[str], list[str]]]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for files, ref_files in items:  # read lazily: one study's pair in memory at a time
            hu, ref = reader(files).hu, reader(ref_files).hu
            if hu.shape == ref.shape:
                yield hu, ref

    histogram = HistogramMatchingBaseline().fit(reader(files).hu for files in references)
    linear = LinearRecalibrationBaseline().fit({p: read_pairs(items) for p, items in sorted(pairs.items())})
    return histogram, linear
