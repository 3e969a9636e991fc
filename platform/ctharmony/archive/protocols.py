"""Protocol classification (FBP, IR, M40, M60, M80, OPT, unknown) from header tags, by YAML rules.

The default rules live in ``protocols.yaml`` beside this module (its header documents the format).
A user rules file is tried first and may replace the defaults. The first rule whose conditions hold
names the protocol; its name is recorded, so every classification can be traced and overridden.

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

PROTOCOLS = ("FBP", "IR", "M40", "M60", "M80", "OPT", "unknown")
FIELDS = ("image_type", "series_description", "kernel", "kvp", "manufacturer", "model", "text")
DEFAULT_RULES = Path(__file__).with_name("protocols.yaml")
NO_MATCH = "no-rule-matched"


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
    values["text"] = " | ".join((values["image_type"], values["series_description"], values["kernel"]))
    return values


@dataclasses.dataclass(frozen=True)
class Rules:
    """An ordered list of rules; ``classify`` returns ``(protocol, rule name)``."""

    rules: tuple[Rule, ...]

    def classify(self, row: Mapping[str, Any]) -> tuple[str, str]:
        fields = _field_values(row)
        for rule in self.rules:
            if rule.holds(fields):
                return rule.protocol, rule.name
        return "unknown", NO_MATCH


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


def parse_rules(document: Any, source: str) -> tuple[list[Rule], bool]:
    """Rules from a parsed YAML document, and whether it asks to replace the defaults."""
    if not isinstance(document, Mapping) or not isinstance(document.get("rules"), list):
        raise RulesError(f"{source}: expected a mapping with a 'rules:' list")
    rules = []
    for index, item in enumerate(document["rules"]):
        where = f"{source}: rule {index + 1}"
        if not isinstance(item, Mapping) or "name" not in item or "protocol" not in item:
            raise RulesError(f"{where}: each rule needs 'name' and 'protocol'")
        where = f"{source}: rule {item['name']!r}"
        if item["protocol"] not in PROTOCOLS:
            raise RulesError(f"{where}: protocol {item['protocol']!r} is not one of {', '.join(PROTOCOLS)}")
        unknown = set(item) - {"name", "protocol", "match", "unless"}
        if unknown:
            raise RulesError(f"{where}: unknown keys {sorted(unknown)}")
        match = _conditions(item.get("match"), where)
        if not match:
            raise RulesError(f"{where}: 'match' needs at least one condition")
        rules.append(Rule(str(item["name"]), item["protocol"], match, _conditions(item.get("unless"), where)))
    return rules, bool(document.get("replace_defaults", False))


def _read(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise RulesError(f"{path}: cannot read rules ({err})") from err


def load_rules(user_file: Path | str | None = None) -> Rules:
    """The default rules, preceded by (or replaced with) those of ``user_file``."""
    defaults, _ = parse_rules(_read(DEFAULT_RULES), str(DEFAULT_RULES))
    if user_file is None:
        return Rules(tuple(defaults))
    mine, replace = parse_rules(_read(Path(user_file)), str(user_file))
    return Rules(tuple(mine if replace else [*mine, *defaults]))
