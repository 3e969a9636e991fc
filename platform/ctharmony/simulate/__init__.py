"""Projection-domain scanner simulation: projector, detector noise, FBP, IR, dual-energy series.

The anatomy, materials, spectra and sites come from :mod:`ctharmony.scanmodel`, shared with :mod:`ctharmony.phantom`.

``simulate_archive(out, patients, slices, size, sites, seed)`` writes a site's protocols of simulated
patients in the phantom archive's layout plus noise-free truth images; see :mod:`.studies`. Sites are
YAML (:mod:`ctharmony.scanmodel.sites`); real CT becomes material maps with :func:`.maps.real_maps`.
"""

from __future__ import annotations

from ctharmony.lazy import lazy_exports

__all__ = ["load_site", "simulate_archive", "site_names"]

__getattr__ = lazy_exports(__name__, {"load_site": "ctharmony.scanmodel.sites", "simulate_archive": "studies",
                                      "site_names": "ctharmony.scanmodel.sites"})
