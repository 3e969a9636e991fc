"""Projection-domain scanner simulation: spectra, projector, noise, FBP kernels, IR, dual-energy mono.

``simulate_archive(out, patients, slices, size, sites, seed)`` writes a site's protocols of simulated
patients in the phantom archive's layout plus noise-free truth images; see :mod:`.archive`. Sites are
YAML (:mod:`.sites`); real CT becomes material maps with :func:`.anatomy.real_maps`.
"""

from __future__ import annotations

from ctharmony.lazy import lazy_exports

__all__ = ["load_site", "simulate_archive", "site_names"]

__getattr__ = lazy_exports(__name__, {"load_site": "sites", "simulate_archive": "archive", "site_names": "sites"})
