"""The model both synthetic scanners share: the body (anatomy, tissues, materials) and the scanners' descriptions.

The image-domain phantom (:mod:`ctharmony.phantom`) and the projection-domain simulator
(:mod:`ctharmony.simulate`) scan the same patients: :mod:`.anatomy` draws and paints them on a :mod:`.grid`
as :mod:`.tissues` labels, each an ICRU-46 material of :mod:`.materials` plus iodine. :mod:`.spectra` holds
the X-ray spectra, :mod:`.blends` the dual-energy recipes (mixed, mono, optimum contrast) and :mod:`.sites`
the scanner sites (:mod:`.kernels`: the FBP kernels a site names).
"""

from __future__ import annotations

from ctharmony.lazy import lazy_exports

__all__ = ["TISSUES", "Grid", "build_anatomy", "load_site", "make_sites", "sample_patient", "site_names"]

__getattr__ = lazy_exports(__name__, {"TISSUES": "tissues", "Grid": "grid", "build_anatomy": "anatomy",
                                      "load_site": "sites", "make_sites": "sites", "sample_patient": "anatomy",
                                      "site_names": "sites"})
