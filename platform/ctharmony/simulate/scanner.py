"""One site's whole protocol set for a stack of slices: project once, then every reconstruction.

:func:`project` turns the material maps into basis line integrals (the expensive, shared step; cache
its result to re-simulate other sites, doses or noise). :func:`reconstruct` then acquires the
dual-energy pair (Poisson + electronic noise, water beam-hardening correction, detector blur) and makes:

- ``LOW`` / ``HIGH``: the tube images (standard kernel); ``FBP``: the mixed image (standard kernel),
  ``FBP_soft`` / ``FBP_sharp``: the mixed sinogram with the soft / sharp kernel;
- ``IR_<level>``: the iterative reconstruction at each strength, ``IR`` the site's archive strength;
- ``M40`` / ``M60`` / ``M80``: noise-optimised virtual mono (Mono+), ``M40_plain`` ...: plain virtual mono;
- ``OPT``: the optimum-contrast blend; ``T40`` / ``T60`` / ``T80``: the noise-free truth (unblurred);

all (z, size, size) float32 HU. ``timings`` records the seconds of each stage. ``series`` limits the work to
the images named (plus ``LOW``, ``HIGH``, ``FBP`` and the truth, always made): e.g. no IR when no ``IR`` /
``IR_<level>`` is asked for.

Example (``maps`` from :mod:`ctharmony.simulate.maps`; see tests/simulate for runs)::

    sim = Scanner(load_site("siemens-force"), size=64)
    images = sim.reconstruct(sim.project(maps), maps, np.random.default_rng(0))
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Collection

import numpy as np

from ctharmony.archive.protocols import MONO_KEV
from ctharmony.scanmodel.sites import ProjectionSite
from ctharmony.simulate import dualenergy as de
from ctharmony.simulate.forward import Exposure, measure
from ctharmony.simulate.maps import MaterialMaps
from ctharmony.simulate.projector import Geometry, Projector, make_projector
from ctharmony.simulate.recon import fbp_relative, iterative, to_hu


class Scanner:
    """A site's scanner at one matrix ``size``: projector, exposures, kernels."""

    def __init__(self, site: ProjectionSite, size: int, backend: str = "svmbir", mas: float | None = None,
                 fov_mm: float | None = None) -> None:
        self.site, self.size = site, int(size)
        self.pixel_mm = (site.fov_mm if fov_mm is None else float(fov_mm)) / size
        self.projector: Projector = make_projector(backend, Geometry(self.size, site.views(self.size)))
        self.mas = site.mas if mas is None else float(mas)
        self.timings: dict[str, float] = defaultdict(float)

    def exposure(self, tube: str, thickness_mm: float) -> Exposure:
        d, det = self.site.dual_energy, self.site.detector
        share = d.low_mas_fraction if tube == "low" else 1.0 - d.low_mas_fraction
        return Exposure(beam=d.low if tube == "low" else d.high, mas=self.mas * share,
                        views=self.projector.geometry.views, bin_area_mm2=self.pixel_mm * thickness_mm,
                        efficiency=det.efficiency, electronic_noise=det.electronic_noise,
                        blur_channels=det.blur_mm / self.pixel_mm,
                        readings_per_ray=det.readings(self.pixel_mm, thickness_mm, self.projector.geometry.views))

    def project(self, maps: MaterialMaps) -> np.ndarray:
        """(3, z, views, channels) basis line integrals in cm (water, bone fractions; iodine mg/mL x cm)."""
        start = time.perf_counter()
        stack = maps.stack()
        if stack.ndim == 3:
            stack = stack[:, None]
        if stack.shape[-1] != self.size or abs(maps.pixel_mm - self.pixel_mm) > 1e-6:
            raise ValueError(f"maps of {stack.shape[-1]} px at {maps.pixel_mm:.4f} mm; the scanner wants "
                             f"{self.size} px at {self.pixel_mm:.4f} mm")
        c, z = stack.shape[:2]
        lines = self.projector.forward(stack.reshape(c * z, self.size, self.size)) * np.float32(self.pixel_mm / 10)
        self.timings["project"] += time.perf_counter() - start
        return lines.reshape(c, z, *lines.shape[1:])

    def reconstruct(self, lines: np.ndarray, maps: MaterialMaps, rng: np.random.Generator | None,
                    thickness_mm: float | None = None, series: Collection[str] | None = None) -> dict[str, np.ndarray]:
        """Every image of the site from cached line integrals (see the module docstring); ``rng=None``: no noise.

        ``series``: only these images (and ``LOW``, ``HIGH``, ``FBP``, ``T40`` / ``T60`` / ``T80``); None: all.
        """
        site, d, k = self.site, self.site.dual_energy, self.site.kernels

        def wanted(name: str) -> bool:
            return series is None or name in series

        thick = site.slice_thickness_mm if thickness_mm is None else thickness_mm
        z = lines.shape[1]
        t = time.perf_counter()
        sino = {tube: np.stack([measure(lines[:, i], self.exposure(tube, thick), rng) for i in range(z)])
                for tube in ("low", "high")}
        mix = d.mix_low_weight * sino["low"] + (1.0 - d.mix_low_weight) * sino["high"]
        t1 = time.perf_counter()
        self.timings["detect"] += t1 - t
        roles = [role for role in ("soft", "sharp") if wanted(f"FBP_{role}")]
        batch = np.concatenate([sino["low"], sino["high"], *([mix] * len(roles))])
        kernels = [k["standard"]] * (2 * z) + [kernel for role in roles for kernel in [k[role]] * z]
        rel = fbp_relative(self.projector, batch, kernels, self.pixel_mm)
        low, high, *others = (to_hu(rel[i * z:(i + 1) * z]) for i in range(2 + len(roles)))
        t2 = time.perf_counter()
        self.timings["fbp"] += t2 - t1
        out = {"LOW": low, "HIGH": high, "FBP": de.mixed(low, high, d.mix_low_weight)}
        out.update({f"FBP_{role}": image for role, image in zip(roles, others, strict=True)})
        levels = [lv for lv in site.ir.strengths
                  if wanted(f"IR_{lv}") or (lv == site.ir.archive_strength and wanted("IR"))]
        if levels:
            ir = iterative(self.projector, mix, k["standard"], self.pixel_mm, [site.ir.strengths[lv] for lv in levels],
                           site.ir.iterations, start=1.0 + out["FBP"] / 1000.0)
            out.update({f"IR_{level}": ir[j] for j, level in enumerate(levels)})
            if site.ir.archive_strength in levels:
                out["IR"] = out[f"IR_{site.ir.archive_strength}"]
        t3 = time.perf_counter()
        self.timings["ir"] += t3 - t2
        k_low = de.iodine_hu_per_mg_ml(d.low)
        k_high = de.iodine_hu_per_mg_ml(d.high)
        split = d.mono_plus_split_mm / self.pixel_mm
        for name, kev in MONO_KEV.items():
            if wanted(f"{name}_plain"):
                out[f"{name}_plain"] = de.mono(low, high, kev, k_low, k_high)
            if wanted(name):
                out[name] = de.mono_plus(low, high, kev, k_low, k_high, d.mono_plus_kev, split)
        if wanted("OPT"):
            out["OPT"] = de.optimum_contrast(low, high, self.pixel_mm)
        for name, kev in MONO_KEV.items():
            truth = maps.mono_hu(kev)
            out["T" + name[1:]] = truth if truth.ndim == 3 else truth[None]
        self.timings["dual_energy"] += time.perf_counter() - t3
        return out
