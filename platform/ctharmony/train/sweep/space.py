"""The λ sweep's search space, read from YAML (``ctharmony/train/sweep/space.yaml``) and turned into Ray Tune's.

Each key under ``params`` is a dotted key of the training spec (``loss.l1`` is λ1, ``loss.perceptual``
λ2, ``loss.gan`` λ3, ``optim.lr`` the learning rate), so a trial's config *is* its list of spec
overrides. A value is one distribution: ``{loguniform: [lo, hi]}``, ``{uniform: [lo, hi]}``,
``{choice: [...]}``, ``{grid: [...]}`` or a plain number (fixed). ``points_to_evaluate`` lists
settings tried first (the paper's λ1=10, λ2=1, λ3=1 by default, so a sweep never loses to it unseen).

Example:
    >>> space = SweepSpace.from_dict({"params": {"loss.l1": {"choice": [3, 10, 30]}}})
    >>> space.overrides({"loss.l1": 10})
    ['loss.l1=10']
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ctharmony.config import ConfigError

DISTRIBUTIONS = ("loguniform", "uniform", "choice", "grid")
#: The shipped default space: package data beside this module.
DEFAULT_SPACE = Path(__file__).with_name("space.yaml")


@dataclasses.dataclass(frozen=True)
class SweepSpace:
    """A validated search space: spec key -> distribution, plus settings tried first and a seed."""

    params: dict[str, Any]
    points_to_evaluate: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    seed: int = 0
    source: str = "<dict>"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<dict>") -> SweepSpace:
        """Validate ``data`` (the YAML's content); errors name the key and ``source``."""
        unknown = sorted(set(data) - {"params", "points_to_evaluate", "seed"})
        if unknown:
            raise ConfigError(f"unknown key(s) {', '.join(unknown)} in sweep space {source}")
        params = data.get("params")
        if not isinstance(params, Mapping) or not params:
            raise ConfigError(f"sweep space {source} needs a non-empty 'params' mapping")
        for key, value in params.items():
            _check_distribution(str(key), value, source)
        points = [dict(p) for p in data.get("points_to_evaluate") or []]
        for point in points:
            extra = sorted(set(point) - set(params))
            if extra:
                raise ConfigError(f"points_to_evaluate in {source} names {extra}, not in params")
        seed = data.get("seed", 0)
        if not isinstance(seed, int):
            raise ConfigError(f"seed in sweep space {source} must be an integer, got {seed!r}")
        return cls(params=dict(params), points_to_evaluate=points, seed=seed, source=source)

    @classmethod
    def load(cls, path: str | Path | None = None) -> SweepSpace:
        """Read a space from ``path`` (default: the shipped ``space.yaml``)."""
        path = Path(path) if path is not None else DEFAULT_SPACE
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise ConfigError(f"cannot read sweep space {path}: {err.strerror}") from err
        except yaml.YAMLError as err:
            raise ConfigError(f"sweep space {path} is not valid YAML: {err}") from err
        if not isinstance(data, Mapping):
            raise ConfigError(f"sweep space {path} must hold a mapping at the top level")
        return cls.from_dict(data, source=str(path))

    @property
    def keys(self) -> list[str]:
        """The swept spec keys, in file order."""
        return list(self.params)

    def to_tune(self) -> dict[str, Any]:
        """The Ray Tune ``param_space`` (``tune.loguniform`` etc.)."""
        from ray import tune

        space: dict[str, Any] = {}
        for key, value in self.params.items():
            if not isinstance(value, Mapping):
                space[key] = value
                continue
            (kind, arg), *_ = value.items()
            if kind == "loguniform":
                space[key] = tune.loguniform(float(arg[0]), float(arg[1]))
            elif kind == "uniform":
                space[key] = tune.uniform(float(arg[0]), float(arg[1]))
            elif kind == "choice":
                space[key] = tune.choice(list(arg))
            else:
                space[key] = tune.grid_search(list(arg))
        return space

    def total_trials(self, samples: int) -> int:
        """Trials of a sweep drawing ``samples`` per grid point (Tune's ``num_samples`` semantics)."""
        grid = 1
        for value in self.params.values():
            if isinstance(value, Mapping) and "grid" in value:
                grid *= len(value["grid"])
        return samples * grid

    def overrides(self, config: Mapping[str, Any]) -> list[str]:
        """A trial's config as ``key=value`` spec overrides (only the swept keys)."""
        return [f"{key}={_yaml_scalar(config[key])}" for key in self.params if key in config]

    def describe(self) -> str:
        """One line per swept key, for logs and the CLI."""
        return "; ".join(f"{k}: {v}" for k, v in self.params.items())


def _yaml_scalar(value: Any) -> str:
    """``value`` as YAML text that parses back to the same number (numpy scalars included)."""
    if hasattr(value, "item"):  # numpy scalar -> Python scalar
        value = value.item()
    if isinstance(value, float):
        return repr(value)
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _check_distribution(key: str, value: Any, source: str) -> None:
    where = f"params.{key} in sweep space {source}"
    if isinstance(value, bool) or isinstance(value, int | float | str):
        return
    if not isinstance(value, Mapping) or len(value) != 1:
        raise ConfigError(f"{where} must be a number or one of {{{', '.join(DISTRIBUTIONS)}: ...}}")
    (kind, arg), *_ = value.items()
    if kind not in DISTRIBUTIONS:
        raise ConfigError(f"{where}: unknown distribution {kind!r}; use one of {', '.join(DISTRIBUTIONS)}")
    if not isinstance(arg, list | tuple) or not arg:
        raise ConfigError(f"{where}: {kind} needs a non-empty list, got {arg!r}")
    if kind in ("loguniform", "uniform"):
        if len(arg) != 2 or not all(isinstance(a, int | float) for a in arg) or not arg[0] < arg[1]:
            raise ConfigError(f"{where}: {kind} needs [low, high] numbers with low < high, got {arg!r}")
        if kind == "loguniform" and not arg[0] > 0:
            raise ConfigError(f"{where}: loguniform needs low > 0, got {arg!r}")
        if not all(math.isfinite(a) for a in arg):
            raise ConfigError(f"{where}: bounds must be finite, got {arg!r}")
