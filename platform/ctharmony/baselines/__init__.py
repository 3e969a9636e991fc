"""Baselines that convert HU like the harmonizer does: fit / apply pairs run through the same pipeline.

Each baseline is a fit function (statistics from training data) and an apply transform (a weightless
``torch.nn.Module`` mapping HU to HU, saved as a small file), kept apart as in TorchIO's histogram
standardization:

- histogram matching (:mod:`.histogram`): ``fit_reference_quantiles`` -> ``HistogramMatchingBaseline``;
- linear HU recalibration (:mod:`.linear`): ``fit_linear_coefficients`` -> ``LinearRecalibrationBaseline``;
- :func:`fit_baselines_from_catalog` fits both on a catalog's training studies; :func:`load_baseline`
  reads a saved one (``.npz`` / ``.json``).

Names load on first use, so importing the package pulls in neither torch nor SimpleITK.

Example:
    >>> from ctharmony.baselines import fit_linear_coefficients, LinearRecalibrationBaseline
    >>> import numpy as np
    >>> coefficients = fit_linear_coefficients({"M40": [(np.array([0.0, 100.0]), np.array([10.0, 60.0]))]},
    ...                                        fit_range=None)
    >>> LinearRecalibrationBaseline(coefficients)(np.array([[[200.0]]]), protocol="M40").item()
    110.0
"""

from __future__ import annotations

from ctharmony.lazy import lazy_exports

__all__ = [
    "BASELINE_PREFIX",
    "BASELINE_SUFFIXES",
    "HISTOGRAM_NAME",
    "HistogramMatchingBaseline",
    "LINEAR_NAME",
    "LinearRecalibrationBaseline",
    "fit_and_save_baselines",
    "fit_baselines_from_catalog",
    "fit_linear_coefficients",
    "fit_reference_quantiles",
    "is_baseline_file",
    "load_baseline",
]

__getattr__ = lazy_exports(__name__, {
    "BASELINE_PREFIX": "base", "HISTOGRAM_NAME": "histogram", "LINEAR_NAME": "linear",
    "HistogramMatchingBaseline": "histogram", "fit_reference_quantiles": "histogram",
    "LinearRecalibrationBaseline": "linear", "fit_linear_coefficients": "linear",
    "BASELINE_SUFFIXES": "files", "load_baseline": "files", "is_baseline_file": "files",
    "fit_baselines_from_catalog": "catalog_fit", "fit_and_save_baselines": "catalog_fit",
})
