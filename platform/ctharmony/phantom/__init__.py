"""Physics-based multi-protocol dual-energy CT phantom archive (the platform's embedded default data).

``generate_archive(out, patients, slices, size, sites, seed, preview)`` writes six reconstructions
(FBP, IR, M40, M60, M80, OPT) per study as DICOM, the true liver masks as NIfTI and
``phantom.parquet``; see :mod:`ctharmony.phantom.generate` for the layout. The image-domain scanner: the
anatomy, materials, spectra and sites come from :mod:`ctharmony.scanmodel`, shared with :mod:`ctharmony.simulate`.
"""

from __future__ import annotations

from ctharmony.lazy import lazy_exports

__all__ = ["PROTOCOLS", "generate_archive"]

__getattr__ = lazy_exports(__name__, {"PROTOCOLS": "physics", "generate_archive": "generate"})
