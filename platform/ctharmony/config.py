"""Typed configuration: dataclasses loaded from YAML with ``key=value`` overrides, and the data home.

Every spec in ``ctharmony/specs/*.yaml`` maps onto a dataclass. Loading is strict: a key the dataclass does not
declare is an error that names the key and the file, so a typo never silently falls back to a default.
The loader and the model specs live in :mod:`ctharmony.models` (``typed_yaml``, ``spec``), so the
networks need nothing from here; this module re-exports them for the YAML users of every package.

Example:
    >>> from ctharmony.models.registry import specs_dir
    >>> spec = load_config(ModelSpec, specs_dir() / "cpu-small.yaml", ["train.epochs_stage1=3"])
    >>> spec.train.epochs_stage1
    3
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ctharmony.models.spec import (
    DiscriminatorSpec,
    GeneratorSpec,
    IntensitySpec,
    LossSpec,
    ModelSpec,
    OptimSpec,
    TrainSpec,
    UNetSpec,
)
from ctharmony.models.typed_yaml import ConfigError, dump_yaml, from_dict, load_config, merge, parse_overrides, to_dict

__all__ = [
    "ConfigError", "DiscriminatorSpec", "GeneratorSpec", "IntensitySpec", "LossSpec", "ModelSpec", "OptimSpec",
    "TrainSpec", "UNetSpec", "data_home", "dump_yaml", "flatten", "from_dict", "load_config", "merge",
    "parse_overrides", "to_dict",
]


def data_home() -> Path:
    """Folder for ctharmony's local state (MLflow store, demo archives): ``$CTHARMONY_HOME`` or ``~/.ctharmony``."""
    return Path(os.environ.get("CTHARMONY_HOME", Path.home() / ".ctharmony")).expanduser()


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (for MLflow params)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


