"""How converted masks are named in reports: ``original``, ``harmonized`` or a baseline's short name.

A model whose name starts with ``baseline-`` (see :mod:`ctharmony.baselines`) is reported
under the rest of its name, e.g. ``baseline-histogram-matching`` -> ``histogram-matching``.

Example:
    >>> method_of("baseline-linear-recalibration", ["ctharmony-harmonizer"])
    'linear-recalibration'
"""

from __future__ import annotations

from collections.abc import Sequence

from ctharmony.baselines.base import BASELINE_PREFIX  # the baselines own their names

ORIGINAL, HARMONIZED = "original", "harmonized"


def method_of(model_name: str, harmonizers: Sequence[str]) -> str:
    """Report name of a converted mask: a baseline's short name, ``harmonized``, or the model's name
    when several harmonizers are compared."""
    if model_name.startswith(BASELINE_PREFIX):
        return model_name[len(BASELINE_PREFIX):]
    return HARMONIZED if len(harmonizers) <= 1 else model_name
