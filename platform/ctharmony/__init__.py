"""ctharmony: archive-scale CT reconstruction harmonization on Ray."""

__version__ = "0.1.0"
