"""The one error of model loading (light to import: no torch)."""

from __future__ import annotations


class ModelLoadError(ValueError):
    """A model reference that nothing can load (no format accepts it, or its format fails): names it and why.

    The one error of model loading, whichever format (:mod:`ctharmony.loaders`) raised it.
    """
