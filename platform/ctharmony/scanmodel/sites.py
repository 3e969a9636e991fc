"""Scanner sites, one description per site: identity and geometry shared, then what each scanner needs.

:class:`Site` holds what both scanners use (DICOM identity tags, field of view, slice thickness). The two
scanners describe the rest differently, so a site is one of two kinds:

- :class:`ImageSite` (the image-domain phantom, :mod:`ctharmony.phantom`): kernel name and NPS peak, FBP
  noise SD, IR noise reduction, i.e. image targets. ``make_sites(K, seed)`` cycles the four Siemens-like
  :data:`SITE_PROFILES` (``site-a`` ...) with small seeded jitter of noise and FOV; ``tilt=True`` appends
  ``site-tilt``, a GE-like :class:`TiltedSite` scanning with the gantry tilted by 10-20 degrees (either way).
- :class:`ProjectionSite` (the projection-domain simulator, :mod:`ctharmony.simulate`): dose, detector, the
  dual-energy pair's spectra, kernels, IR, from YAML. Packaged sites live in ``ctharmony/scanmodel/sites/*.yaml``
  (:func:`site_names`); a user describes a scanner by copying one. Keys (all required unless a default is shown):

  - ``name``, ``institution``, ``manufacturer``, ``model``: written to the DICOM headers;
  - ``fov_mm`` (reconstruction diameter), ``slice_thickness_mm``, ``mas`` (effective mAs, both tubes),
    ``views_per_pixel`` (projections per rotation / matrix size, default 1.5);
  - ``detector``: ``efficiency`` (0.9), ``electronic_noise`` (SD per reading in photons, 3.0), ``blur_mm``
    (detector + focal spot), ``element_mm`` (detector element at the isocentre, 0.6) and ``views_per_rotation``
    (1152): a simulated ray sums the real readings it covers, and their electronic noise;
  - ``dual_energy``: ``low`` and ``high`` beams (``kvp``, ``filters: {Al: mm, Sn: mm, Cu: mm}``),
    ``low_mas_fraction`` (share of the mAs on the low tube, 0.5), ``mix_low_weight`` (the mixed image, 0.6),
    ``mono_plus_kev`` (70), ``mono_plus_split_mm`` (Mono+ frequency split, 6);
  - ``kernels``: ``soft``, ``standard``, ``sharp``, each ``{name, cutoff_lp_mm, enhance (0)}``;
  - ``ir``: ``name``, ``iterations`` (2), ``strengths`` (vendor level -> TV weight in HU), ``archive_strength``;
  - ``descriptions`` (optional): SeriesDescription per series (``FBP``, ``FBP_soft``, ``FBP_sharp``, ``IR``,
    ``M40``, ``M60``, ``M80``, ``OPT``) as the vendor writes it, with ``{kernel}``, ``{thickness}``,
    ``{ir}`` and ``{level}`` filled in; series not named keep the phantom archive's descriptions.

  A missing or mistyped key raises :class:`~ctharmony.config.ConfigError` naming the file and the key.

The phantom's sites (``site-a`` ...) and the packaged YAML sites are different scanners; their numbers
are kept as they are, so both archives stay byte-identical to earlier versions.

Example:
    >>> [s.name for s in make_sites(3, seed=0)], make_sites(1, seed=0, tilt=True)[-1].name
    (['site-a', 'site-b', 'site-c'], 'site-tilt')
    >>> site = load_site("siemens-force")
    >>> site.kernels["standard"].name, site.dual_energy.high.label
    ('Br40', 'Sn150')
"""

from __future__ import annotations

import dataclasses
import string
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ctharmony.config import ConfigError
from ctharmony.scanmodel.kernels import Kernel
from ctharmony.scanmodel.spectra import Beam

KERNEL_ROLES = ("soft", "standard", "sharp")


@dataclasses.dataclass(frozen=True)
class Site:
    """What every site has: the DICOM identity and the scan geometry (field of view, slice thickness)."""

    name: str
    institution: str
    manufacturer: str
    model: str
    fov_mm: float
    slice_thickness_mm: float


@dataclasses.dataclass(frozen=True)
class ImageSite(Site):
    """An image-domain site (the phantom's): kernel sharpness, FBP noise and IR strength as image targets."""

    kernel: str
    kernel_peak_lp_mm: float  # FBP noise-power-spectrum peak (kernel sharpness)
    fbp_noise_hu: float  # target FBP noise SD in a uniform region
    ir_reduction: float  # IR noise SD reduction relative to FBP (0.30 = 30 % lower)


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
class TiltedSite(ImageSite):
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


def make_sites(count: int, seed: int = 0, tilt: bool = False) -> list[ImageSite]:
    """``count`` sites, profile ``k % 4`` each, with seeded small jitter of noise and FOV (+ ``site-tilt``)."""
    if count < 1:
        raise ValueError(f"sites must be >= 1, got {count}")
    rng = np.random.default_rng([seed, 7919])
    sites = []
    for k in range(count):
        manufacturer, model, kernel, peak, sd, ir, fov, thick = SITE_PROFILES[k % len(SITE_PROFILES)]
        letter = string.ascii_lowercase[k % 26] + ("" if k < 26 else str(k // 26))
        sites.append(ImageSite(
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


@dataclasses.dataclass(frozen=True)
class DualEnergy:
    low: Beam
    high: Beam
    low_mas_fraction: float = 0.5
    mix_low_weight: float = 0.6
    mono_plus_kev: float = 70.0
    mono_plus_split_mm: float = 6.0


@dataclasses.dataclass(frozen=True)
class IterativeRecon:
    name: str
    strengths: dict[str, float]
    archive_strength: str
    iterations: int = 2


@dataclasses.dataclass(frozen=True)
class Detector:
    efficiency: float = 0.9
    electronic_noise: float = 3.0
    blur_mm: float = 0.7
    element_mm: float = 0.6
    views_per_rotation: int = 1152

    def readings(self, bin_mm: float, thickness_mm: float, views: int) -> float:
        """Real readings summed into one simulated ray of ``bin_mm`` x ``thickness_mm`` at ``views`` per rotation."""
        return (self.views_per_rotation / views) * bin_mm * thickness_mm / self.element_mm**2


@dataclasses.dataclass(frozen=True)
class ProjectionSite(Site):
    """A projection-domain site (the simulator's), read from YAML (keys in the module docstring)."""

    mas: float
    dual_energy: DualEnergy
    kernels: dict[str, Kernel]
    ir: IterativeRecon
    detector: Detector = Detector()
    views_per_pixel: float = 1.5
    descriptions: dict[str, str] = dataclasses.field(default_factory=dict)
    source: str = ""

    def views(self, size: int) -> int:
        """Projections per rotation for a ``size`` matrix (a multiple of 8)."""
        return max(8, int(round(self.views_per_pixel * size / 8.0)) * 8)


def site_names() -> list[str]:
    """The packaged sites."""
    folder = resources.files("ctharmony.scanmodel") / "sites"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_site(name_or_path: str | Path) -> ProjectionSite:
    """A packaged site by name, or a site YAML file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = Path(str(resources.files("ctharmony.scanmodel") / "sites" / f"{name_or_path}.yaml"))
        if not path.is_file():
            raise ConfigError(f"unknown site {name_or_path!r}; packaged sites: {', '.join(site_names())}")
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read site YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a site must be a mapping of keys, got {type(raw).__name__}")
    return _parse(raw, str(path))


def _take(d: dict[str, Any], key: str, where: str, kind: type = float, default: Any = dataclasses.MISSING) -> Any:
    if key not in d:
        if default is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing key {key!r}")
        return default
    value = d[key]
    try:
        return kind(value) if kind is not dict else dict(value)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: key {key!r} must be {kind.__name__}, got {value!r}") from err


def _beam(d: Any, where: str) -> Beam:
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: must be a mapping with kvp and filters")
    filters = _take(d, "filters", where, dict, {"Al": 6.0})
    try:
        return Beam(kvp=_take(d, "kvp", where), filters=tuple((str(k), float(v)) for k, v in filters.items()))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from err


def _parse(raw: dict[str, Any], source: str) -> ProjectionSite:
    known = {f.name for f in dataclasses.fields(ProjectionSite)} - {"source"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    de = _take(raw, "dual_energy", source, dict)
    w = f"{source}: dual_energy"
    dual = DualEnergy(low=_beam(de.get("low"), f"{w}.low"), high=_beam(de.get("high"), f"{w}.high"),
                      low_mas_fraction=_take(de, "low_mas_fraction", w, float, 0.5),
                      mix_low_weight=_take(de, "mix_low_weight", w, float, 0.6),
                      mono_plus_kev=_take(de, "mono_plus_kev", w, float, 70.0),
                      mono_plus_split_mm=_take(de, "mono_plus_split_mm", w, float, 6.0))
    ks = _take(raw, "kernels", source, dict)
    kernels = {}
    for role in KERNEL_ROLES:
        where = f"{source}: kernels.{role}"
        spec = _take(ks, role, f"{source}: kernels", dict)
        try:
            kernels[role] = Kernel(name=_take(spec, "name", where, str),
                                   cutoff_lp_mm=_take(spec, "cutoff_lp_mm", where),
                                   enhance=_take(spec, "enhance", where, float, 0.0))
        except ValueError as err:
            raise ConfigError(f"{where}: {err}") from err
    ir_raw = _take(raw, "ir", source, dict)
    w = f"{source}: ir"
    strengths = {str(k): float(v) for k, v in _take(ir_raw, "strengths", w, dict).items()}
    archive = str(_take(ir_raw, "archive_strength", w, str))
    if archive not in strengths:
        raise ConfigError(f"{w}: archive_strength {archive!r} is not one of the strengths {list(strengths)}")
    ir = IterativeRecon(name=_take(ir_raw, "name", w, str), strengths=strengths, archive_strength=archive,
                        iterations=_take(ir_raw, "iterations", w, int, 2))
    det = _take(raw, "detector", source, dict, {})
    w = f"{source}: detector"
    detector = Detector(efficiency=_take(det, "efficiency", w, float, 0.9),
                        electronic_noise=_take(det, "electronic_noise", w, float, 3.0),
                        blur_mm=_take(det, "blur_mm", w, float, 0.7),
                        element_mm=_take(det, "element_mm", w, float, 0.6),
                        views_per_rotation=_take(det, "views_per_rotation", w, int, 1152))
    return ProjectionSite(name=_take(raw, "name", source, str), institution=_take(raw, "institution", source, str),
                   manufacturer=_take(raw, "manufacturer", source, str), model=_take(raw, "model", source, str),
                   fov_mm=_take(raw, "fov_mm", source), slice_thickness_mm=_take(raw, "slice_thickness_mm", source),
                   mas=_take(raw, "mas", source), dual_energy=dual, kernels=kernels, ir=ir, detector=detector,
                   views_per_pixel=_take(raw, "views_per_pixel", source, float, 1.5),
                   descriptions=_descriptions(raw.get("descriptions", {}), source), source=source)


DESCRIBED = ("FBP", "FBP_soft", "FBP_sharp", "IR", "M40", "M60", "M80", "OPT")


def _descriptions(raw: Any, source: str) -> dict[str, str]:
    if not isinstance(raw, dict) or not set(raw) <= set(DESCRIBED):
        raise ConfigError(f"{source}: descriptions must map series of {', '.join(DESCRIBED)} to text, got {raw!r}")
    out = {str(k): str(v) for k, v in raw.items()}
    for name, text in out.items():
        try:
            text.format(kernel="", thickness="", ir="", level="")
        except (KeyError, IndexError, ValueError) as err:
            raise ConfigError(f"{source}: descriptions.{name}: {err!r} (fields: kernel, thickness, ir, level)") from err
    return out
