"""What goes downstream: per-series policies for irregular geometry and unrecognized protocols.

The catalog measures every series (``geometry``, ``tilt_degrees``, ``largest_gap_mm``) and the conversion
decides with explicit policies, never with a warning nobody reads:

- ``on_tilt``: a gantry-tilted series is converted slice by slice and written with the scanner's own
  sheared geometry (``convert``, the default: a 2-D network needs no de-shearing), or ``skip``;
- ``on_gap``: a series with missing slices or uneven spacing is converted with every slice's true
  position (``convert``), or ``skip``;
- ``on_unknown``: a series whose protocol no rule recognized is converted like the others (``convert``:
  the harmonizer maps any reconstruction to the reference look), or ``skip``.

A skipped series still gets its row in ``results.parquet`` (status ``skipped``, the policy as reason).

Example:
    >>> skip_reason({"geometry": "gantry tilt", "tilt_degrees": 15.0}, Policies(on_tilt="skip"))
    'policy on_tilt=skip: gantry tilt of 15.0 degrees'
    >>> skip_reason({"geometry": "regular"}, Policies(on_tilt="skip"))
    ''
"""

from __future__ import annotations

import dataclasses
from typing import Any

CHOICES = ("convert", "skip")


@dataclasses.dataclass(frozen=True)
class Policies:
    """What to do with tilted, gapped / unevenly spaced and unknown-protocol series."""

    on_tilt: str = "convert"
    on_gap: str = "convert"
    on_unknown: str = "convert"

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value not in CHOICES:
                raise ValueError(f"{field.name}={value!r}: choose one of {', '.join(CHOICES)}")


def skip_reason(item: dict[str, Any], policies: Policies) -> str:
    """Why a catalog series is not converted under ``policies`` ('' when it is)."""
    geometry = str(item.get("geometry") or "")
    if policies.on_tilt == "skip" and "gantry tilt" in geometry:
        return f"policy on_tilt=skip: gantry tilt of {float(item.get('tilt_degrees') or 0):.1f} degrees"
    if policies.on_gap == "skip" and ("gap" in geometry or "variable spacing" in geometry):
        gap = float(item.get("largest_gap_mm") or 0)
        detail = f"largest gap {gap:.1f} mm" if gap else "uneven slice spacing"
        return f"policy on_gap=skip: {detail}"
    if policies.on_unknown == "skip" and str(item.get("protocol") or "unknown") in ("", "unknown"):
        return "policy on_unknown=skip: no protocol rule recognized the series"
    return ""
