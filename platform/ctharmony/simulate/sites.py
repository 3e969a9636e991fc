"""Scanner sites as YAML: vendor tags, dose, spectra of the dual-energy pair, kernels, IR strengths, FOV.

Packaged sites live in ``ctharmony/simulate/sites/*.yaml`` (:func:`site_names`); a user describes a
scanner by copying one. Keys (all required unless a default is shown):

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

Example:
    >>> site = load_site("siemens-force")
    >>> site.kernels["standard"].name, site.dual_energy.high.label
    ('Br40', 'Sn150')
"""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ctharmony.config import ConfigError
from ctharmony.simulate.kernels import Kernel
from ctharmony.simulate.spectra import Beam

KERNEL_ROLES = ("soft", "standard", "sharp")


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
class SimSite:
    """One simulated scanner site (see the module docstring for the YAML keys)."""

    name: str
    institution: str
    manufacturer: str
    model: str
    fov_mm: float
    slice_thickness_mm: float
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
    folder = resources.files("ctharmony.simulate") / "sites"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_site(name_or_path: str | Path) -> SimSite:
    """A packaged site by name, or a site YAML file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = Path(str(resources.files("ctharmony.simulate") / "sites" / f"{name_or_path}.yaml"))
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


def _parse(raw: dict[str, Any], source: str) -> SimSite:
    known = {f.name for f in dataclasses.fields(SimSite)} - {"source"}
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
    return SimSite(name=_take(raw, "name", source, str), institution=_take(raw, "institution", source, str),
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
