"""Scanner sites: what makes a multi-site archive heterogeneous.

Sites differ in manufacturer / model tags, kernel name and sharpness, noise level, field of view
(hence pixel spacing), slice thickness and IR strength. Site ``k`` is a fixed profile from
:data:`SITE_PROFILES` (cycled) with small seeded perturbations, so ``make_sites(K, seed)`` is
deterministic. ``make_sites(K, seed, tilt=True)`` appends ``site-tilt``, a GE-like :class:`TiltedSite`
scanning with the gantry tilted by 10-20 degrees (either way), as older abdominal protocols did to
spare the lenses or follow the spine; only asked-for archives contain it.

Example:
    >>> [s.name for s in make_sites(3, seed=0)]
    ['site-a', 'site-b', 'site-c']
    >>> make_sites(1, seed=0, tilt=True)[-1].name
    'site-tilt'
"""

from __future__ import annotations

import dataclasses
import string

import numpy as np


@dataclasses.dataclass(frozen=True)
class Site:
    """One scanner site's acquisition and reconstruction settings."""

    name: str
    institution: str
    manufacturer: str
    model: str
    kernel: str
    kernel_peak_lp_mm: float  # FBP noise-power-spectrum peak (kernel sharpness)
    fbp_noise_hu: float  # target FBP noise SD in a uniform region
    ir_reduction: float  # IR noise SD reduction relative to FBP (0.30 = 30 % lower)
    fov_mm: float
    slice_thickness_mm: float


SITE_PROFILES = (
    # manufacturer, model, kernel, NPS peak (lp/mm), FBP noise SD (HU), IR reduction, FOV (mm), slice (mm)
    ("SIEMENS", "SOMATOM Force", "Br40", 0.30, 13.5, 0.30, 340.0, 3.0),
    ("Siemens Healthineers", "SOMATOM Drive", "Qr40", 0.33, 14.5, 0.28, 380.0, 2.0),
    ("SIEMENS", "SOMATOM Definition Flash", "B40f", 0.27, 12.8, 0.32, 320.0, 5.0),
    ("Siemens Healthineers", "SOMATOM Edge Plus", "Br44", 0.36, 15.2, 0.29, 360.0, 1.5),
)

# GE-like tilted site: Revolution CT, STANDARD kernel, ASiR-V-like IR, 2.5 mm slices (same columns as above)
TILT_PROFILE = ("GE MEDICAL SYSTEMS", "Revolution CT", "STANDARD", 0.31, 13.8, 0.30, 360.0, 2.5)
TILT_RANGE_DEG = (10.0, 20.0)


@dataclasses.dataclass(frozen=True)
class TiltedSite(Site):
    """A site that scans with the gantry tilted by ``gantry_tilt_deg`` (DICOM GantryDetectorTilt)."""

    gantry_tilt_deg: float = -15.0


def tilted_site(seed: int = 0, tilt_deg: float | None = None) -> TiltedSite:
    """``site-tilt``: the GE-like profile with a seeded tilt of 10-20 degrees, either sign (or ``tilt_deg``)."""
    rng = np.random.default_rng([seed, 7919, 1])
    magnitude = round(float(rng.uniform(*TILT_RANGE_DEG)) * 2.0) / 2.0
    tilt = magnitude * (1.0 if rng.uniform() < 0.5 else -1.0) if tilt_deg is None else float(tilt_deg)
    manufacturer, model, kernel, peak, sd, ir, fov, thick = TILT_PROFILE
    return TiltedSite(name="site-tilt", institution="Phantom Hospital Tilt", manufacturer=manufacturer, model=model,
                      kernel=kernel, kernel_peak_lp_mm=peak, fbp_noise_hu=sd, ir_reduction=ir, fov_mm=fov,
                      slice_thickness_mm=thick, gantry_tilt_deg=tilt)


def make_sites(count: int, seed: int = 0, tilt: bool = False) -> list[Site]:
    """``count`` sites, profile ``k % 4`` each, with seeded small jitter of noise and FOV (+ ``site-tilt``)."""
    if count < 1:
        raise ValueError(f"sites must be >= 1, got {count}")
    rng = np.random.default_rng([seed, 7919])
    sites = []
    for k in range(count):
        manufacturer, model, kernel, peak, sd, ir, fov, thick = SITE_PROFILES[k % len(SITE_PROFILES)]
        letter = string.ascii_lowercase[k % 26] + ("" if k < 26 else str(k // 26))
        sites.append(Site(
            name=f"site-{letter}",
            institution=f"Phantom Hospital {letter.upper()}",
            manufacturer=manufacturer,
            model=model,
            kernel=kernel,
            kernel_peak_lp_mm=peak,
            fbp_noise_hu=float(np.clip(sd + rng.normal(0, 0.3), 12.5, 15.5)),
            ir_reduction=ir,
            fov_mm=fov + 10.0 * float(rng.integers(-1, 2)),
            slice_thickness_mm=thick,
        ))
    return [*sites, tilted_site(seed)] if tilt else sites
