"""Protocol classification (FBP, IR, M40, M60, M80, OPT, unknown) from header tags, by YAML rules.

The default rules live in ``protocols.yaml`` beside this module (its header documents the format and
the vendor conventions). A user rules file is tried first and may replace the defaults or declare
protocols of its own. The first rule whose conditions hold names the protocol and its name is
recorded (``protocol_rule``), so every classification can be traced and overridden. A series no rule
recognizes is ``unknown``: nothing is FBP by default.

A rule with ``protocol: by-energy`` is a virtual mono-energetic rule: the energy is read from the
description / image type / reconstruction markers and mapped to the protocol whose energy is nearest,
within ``mono_tolerance_kev``; otherwise the series is ``unknown``. Either way the energy is part of
the recorded rule name (``monoenergetic-40kev``, ``monoenergetic-70kev``).

Example:
    >>> rules = load_rules()
    >>> rules.classify({"image_type": "DERIVED\\\\PRIMARY\\\\AXIAL\\\\MONOENERGETIC",
    ...                 "series_description": "Abdomen PV Mono+ 40keV"})
    ('M40', 'monoenergetic-40kev')
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

# The protocol registry: every other package imports these names from here (user rules add their own).
PAPER_PROTOCOLS = ("FBP", "IR", "M40", "M60", "M80", "OPT")  # the paper's six reconstructions
REFERENCE_PROTOCOL = "M80"  # the target look (80 keV virtual mono-energetic)
UNKNOWN = "unknown"  # no rule recognized the series (never FBP by default)
PROTOCOLS = (*PAPER_PROTOCOLS, UNKNOWN)  # built in; ``load_rules(file).protocols`` adds a user file's
MONO_KEV = {"M40": 40.0, "M60": 60.0, "M80": 80.0}  # the registry's virtual mono-energetic protocols
BY_ENERGY = "by-energy"
FIELDS = ("image_type", "series_description", "kernel", "kvp", "manufacturer", "model", "protocol_name",
          "recon_info", "text")
TEXT_FIELDS = ("image_type", "series_description", "kernel", "recon_info")  # joined into `text`
ENERGY_FIELDS = ("series_description", "image_type", "recon_info")  # where a mono energy is looked for
DEFAULT_RULES = Path(__file__).with_name("protocols.yaml")
NO_MATCH = "no-rule-matched"
_TOP_KEYS = {"rules", "replace_defaults", "protocols", "mono_tolerance_kev"}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,31}$")
_ENERGY = (
    re.compile(r"(?<![\d.])(\d{2,3}(?:[.,]\d+)?)\s*-?\s*kev(?![a-z])", re.IGNORECASE),
    re.compile(r"mono(?:energetic|chromatic|plus|e|\+)?[\s_-]*(\d{2,3}(?:[.,]\d+)?)(?![\d.])", re.IGNORECASE),
    re.compile(r"\b(?:vmi|vmc|vmono)[\s_-]*(\d{2,3}(?:[.,]\d+)?)(?![\d.])", re.IGNORECASE),
)


class RulesError(ValueError):
    """A rules file is invalid (the message names the file and the rule)."""


@dataclasses.dataclass(frozen=True)
class Rule:
    name: str
    protocol: str
    match: tuple[tuple[str, re.Pattern[str]], ...]
    unless: tuple[tuple[str, re.Pattern[str]], ...] = ()

    def holds(self, fields: Mapping[str, str]) -> bool:
        return all(p.search(fields.get(f, "")) for f, p in self.match) and not any(
            p.search(fields.get(f, "")) for f, p in self.unless
        )


def _field_values(row: Mapping[str, Any]) -> dict[str, str]:
    values = {f: str(row.get(f, "") or "") for f in FIELDS if f not in ("kvp", "text")}
    kvp = row.get("kvp")
    values["kvp"] = "" if kvp is None or (isinstance(kvp, float) and math.isnan(kvp)) else f"{float(kvp):g}"
    values["text"] = " | ".join(values[f] for f in TEXT_FIELDS)
    return values


def mono_energy(fields: Mapping[str, str]) -> float | None:
    """The virtual mono-energetic energy (keV) named in the header fields, or None.

    Example:
        >>> mono_energy({"series_description": "GSI MonoE 40keV"}), mono_energy({"image_type": "MONO+ 65"})
        (40.0, 65.0)
    """
    for field in ENERGY_FIELDS:
        for pattern in _ENERGY:
            found = pattern.search(fields.get(field, "") or "")
            if found:
                return float(found.group(1).replace(",", "."))
    return None


@dataclasses.dataclass(frozen=True)
class Rules:
    """An ordered list of rules; ``classify`` returns ``(protocol, rule name)``.

    ``protocols`` is the registry in force (the paper's six, ``unknown`` and any a user file declared),
    ``mono_kev`` the energy of each mono-energetic protocol, ``tolerance_kev`` how far off an energy may be.
    """

    rules: tuple[Rule, ...]
    protocols: tuple[str, ...] = PROTOCOLS
    mono_kev: Mapping[str, float] = dataclasses.field(default_factory=lambda: dict(MONO_KEV))
    tolerance_kev: float = 2.0

    def protocol_for_energy(self, kev: float) -> str:
        """The mono-energetic protocol nearest ``kev`` within the tolerance, else ``unknown``."""
        if not self.mono_kev:
            return "unknown"
        name, energy = min(self.mono_kev.items(), key=lambda item: abs(item[1] - kev))
        return name if abs(energy - kev) <= self.tolerance_kev + 1e-9 else "unknown"

    def classify(self, row: Mapping[str, Any]) -> tuple[str, str]:
        fields = _field_values(row)
        for rule in self.rules:
            if not rule.holds(fields):
                continue
            if rule.protocol != BY_ENERGY:
                return rule.protocol, rule.name
            kev = mono_energy(fields)
            if kev is None:
                return "unknown", f"{rule.name}-no-energy"
            return self.protocol_for_energy(kev), f"{rule.name}-{kev:g}kev"
        return "unknown", NO_MATCH


@dataclasses.dataclass(frozen=True)
class RulesFile:
    """One parsed rules document."""

    rules: list[Rule]
    replace_defaults: bool = False
    protocols: dict[str, float | None] = dataclasses.field(default_factory=dict)  # declared: name -> keV or None
    tolerance_kev: float | None = None


def _conditions(spec: Any, where: str) -> tuple[tuple[str, re.Pattern[str]], ...]:
    if spec is None:
        return ()
    if not isinstance(spec, Mapping):
        raise RulesError(f"{where}: conditions must be a mapping of field -> regex")
    out = []
    for field, pattern in spec.items():
        if field not in FIELDS:
            raise RulesError(f"{where}: unknown field {field!r} (known: {', '.join(FIELDS)})")
        try:
            out.append((field, re.compile(str(pattern), re.IGNORECASE)))
        except re.error as err:
            raise RulesError(f"{where}: bad regex for {field!r}: {err}") from err
    return tuple(out)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise RulesError(f"{where}: expected a non-negative number of keV, got {value!r}")
    return float(value)


def _declared(spec: Any, source: str) -> dict[str, float | None]:
    """``protocols:`` of a user file: a list of names, or a mapping name -> {mono_kev: N} (or nothing)."""
    if spec is None:
        return {}
    items = {name: None for name in spec} if isinstance(spec, list) else spec
    if not isinstance(items, Mapping):
        raise RulesError(f"{source}: 'protocols:' must be a list of names or a mapping name -> {{mono_kev: N}}")
    out: dict[str, float | None] = {}
    for name, extra in items.items():
        where = f"{source}: protocol {name!r}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise RulesError(f"{where}: a name is a letter, then up to 31 letters, digits, '_', '.' or '-'")
        if name in PROTOCOLS:
            raise RulesError(f"{where}: already a built-in protocol ({', '.join(PROTOCOLS)})")
        if extra is not None and (not isinstance(extra, Mapping) or set(extra) - {"mono_kev"}):
            raise RulesError(f"{where}: the only setting of a protocol is 'mono_kev'")
        kev = (extra or {}).get("mono_kev")
        out[name] = None if kev is None else _number(kev, where)
    return out


def parse_rules(document: Any, source: str, known: tuple[str, ...] = PROTOCOLS) -> RulesFile:
    """A parsed YAML rules document; ``known`` are the protocols its rules may name besides its own."""
    if not isinstance(document, Mapping) or not isinstance(document.get("rules"), list):
        raise RulesError(f"{source}: expected a mapping with a 'rules:' list")
    unknown_keys = set(document) - _TOP_KEYS
    if unknown_keys:
        raise RulesError(f"{source}: unknown top-level keys {sorted(unknown_keys)} (known: {sorted(_TOP_KEYS)})")
    declared = _declared(document.get("protocols"), source)
    allowed = (*known, *declared, BY_ENERGY)
    tolerance = document.get("mono_tolerance_kev")
    tolerance = None if tolerance is None else _number(tolerance, f"{source}: mono_tolerance_kev")
    rules = []
    for index, item in enumerate(document["rules"]):
        where = f"{source}: rule {index + 1}"
        if not isinstance(item, Mapping) or "name" not in item or "protocol" not in item:
            raise RulesError(f"{where}: each rule needs 'name' and 'protocol'")
        where = f"{source}: rule {item['name']!r}"
        if item["protocol"] not in allowed:
            raise RulesError(
                f"{where}: protocol {item['protocol']!r} is not one of {', '.join(allowed)}; "
                "declare a new one under 'protocols:'"
            )
        extra = set(item) - {"name", "protocol", "match", "unless"}
        if extra:
            raise RulesError(f"{where}: unknown keys {sorted(extra)}")
        match = _conditions(item.get("match"), where)
        if not match:
            raise RulesError(f"{where}: 'match' needs at least one condition")
        rules.append(Rule(str(item["name"]), item["protocol"], match, _conditions(item.get("unless"), where)))
    return RulesFile(rules, bool(document.get("replace_defaults", False)), declared, tolerance)


def _read(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise RulesError(f"{path}: cannot read rules ({err})") from err


def _mono_registry(declared: Mapping[str, float | None], tolerance: float, source: str) -> dict[str, float]:
    energies = {**MONO_KEV, **{name: kev for name, kev in declared.items() if kev is not None}}
    ordered = sorted(energies.items(), key=lambda item: item[1])
    for (a, ka), (b, kb) in zip(ordered, ordered[1:], strict=False):
        if kb - ka <= 2 * tolerance:
            raise RulesError(f"{source}: {a} ({ka:g} keV) and {b} ({kb:g} keV) overlap within "
                             f"mono_tolerance_kev {tolerance:g}")
    return energies


def load_rules(user_file: Path | str | None = None) -> Rules:
    """The default rules, preceded by (or replaced with) those of ``user_file``."""
    defaults = parse_rules(_read(DEFAULT_RULES), str(DEFAULT_RULES))
    tolerance = defaults.tolerance_kev if defaults.tolerance_kev is not None else 2.0
    if user_file is None:
        return Rules(tuple(defaults.rules), PROTOCOLS, _mono_registry({}, tolerance, str(DEFAULT_RULES)), tolerance)
    mine = parse_rules(_read(Path(user_file)), str(user_file))
    if mine.tolerance_kev is not None:
        tolerance = mine.tolerance_kev
    rules = mine.rules if mine.replace_defaults else [*mine.rules, *defaults.rules]
    registry = _mono_registry(mine.protocols, tolerance, str(user_file))
    return Rules(tuple(rules), (*PROTOCOLS, *mine.protocols), registry, tolerance)
