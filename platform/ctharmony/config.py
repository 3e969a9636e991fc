"""Typed configuration: dataclasses loaded from YAML with ``key=value`` overrides.

Every spec in ``models/*.yaml`` maps onto a dataclass. Loading is strict: a key the dataclass does not
declare is an error that names the key and the file, so a typo never silently falls back to a default.

Example:
    >>> spec = load_config(TrainSpec, "models/cpu-small.yaml", ["train.epochs=3"])  # doctest: +SKIP
    >>> spec.train.epochs  # doctest: +SKIP
    3
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the key and the source."""


def data_home() -> Path:
    """Folder for ctharmony's local state (MLflow store, demo archives): ``$CTHARMONY_HOME`` or ``~/.ctharmony``."""
    return Path(os.environ.get("CTHARMONY_HOME", Path.home() / ".ctharmony")).expanduser()


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """Turn ``["train.epochs=3", "loss.weights=[10,1,1]"]`` into a nested dict (values parsed as YAML)."""
    nested: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form key=value")
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with another override of {part!r}")
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    return nested


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge ``update`` into a copy of ``base``."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def from_dict(cls: type[T], data: Mapping[str, Any] | None, source: str = "<dict>", prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, recursing into nested dataclasses; unknown keys raise."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        names = ", ".join(prefix + k for k in unknown)
        raise ConfigError(f"unknown key(s) {names} in {source}; {cls.__name__} accepts: {', '.join(fields)}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, source, prefix + name)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"invalid {cls.__name__} in {source}: {err}") from err


def _coerce(hint: Any, value: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        hint, origin = args[0], typing.get_origin(args[0])
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} in {source} must be a mapping, got {value!r}")
        return from_dict(hint, value, source, key + ".")  # type: ignore[arg-type]
    if origin is tuple and isinstance(value, list | tuple):
        args = typing.get_args(hint)
        inner = args[0] if args else Any
        return tuple(_coerce(inner, v, source, key) for v in value)
    if origin is list and isinstance(value, list | tuple):
        (inner,) = typing.get_args(hint) or (Any,)
        return [_coerce(inner, v, source, key) for v in value]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float) and isinstance(value, str):  # YAML 1.1 reads "2e-4" as a string
        try:
            return hint(value)
        except ValueError:
            pass
    if hint in (int, float, str, bool) and not isinstance(value, hint):
        raise ConfigError(f"{key} in {source} must be {hint.__name__}, got {value!r}")
    return value


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as plain nested dicts and lists (tuples become lists), ready for YAML."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(obj))


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Load ``cls`` from a YAML file (or its defaults when ``path`` is None) and apply overrides."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as err:
            raise ConfigError(f"cannot read config file {path}: {err.strerror}") from err
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
        if loaded is not None and not isinstance(loaded, Mapping):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        data = dict(loaded or {})
    if overrides:
        data = merge(data, parse_overrides(overrides))
        source += " + overrides"
    return from_dict(cls, data, source)


def dump_yaml(obj: Any) -> str:
    """A dataclass as YAML text (the resolved config that is logged with every run)."""
    return yaml.safe_dump(to_dict(obj), sort_keys=False)


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


# --- model and training specs (models/*.yaml); owner: training (issue 5) ---------------------------


@dataclasses.dataclass
class IntensitySpec:
    """HU window and min-max normalisation to [0, 1]; travels with every logged model."""

    hu_min: float = -1024.0
    hu_max: float = 2048.0

    def __post_init__(self) -> None:
        if not self.hu_max > self.hu_min:
            raise ValueError(f"intensity.hu_max ({self.hu_max}) must exceed hu_min ({self.hu_min})")


@dataclasses.dataclass
class GeneratorSpec:
    """Pixel-unshuffle -> hierarchical feature-synthesis trunk -> pixel-shuffle, global residual."""

    channels: int = 64
    modules: int = 4  # hierarchical feature-synthesis modules in the trunk
    res_blocks: int = 4  # residual blocks per module, aggregated and fused
    unshuffle: int = 2  # pixel-unshuffle factor (2: a quarter of the pixels, none lost)


@dataclasses.dataclass
class DiscriminatorSpec:
    """Real-ESRGAN's U-Net discriminator with spectral normalisation."""

    channels: int = 64
    skip_connection: bool = True


@dataclasses.dataclass
class UNetSpec:
    """2D U-Net (the reference liver segmenter)."""

    channels: int = 32
    depth: int = 4
    norm: str = "batch"  # "batch", "group" (per-image: invariant to global intensity shifts) or "none"


@dataclasses.dataclass
class LossSpec:
    """Stage-2 loss weights λ1 (L1), λ2 (perceptual), λ3 (GAN) and the perceptual extractor."""

    l1: float = 10.0
    perceptual: float = 1.0
    gan: float = 1.0
    perceptual_net: str = "segmenter"  # "segmenter" (no download) or "vgg19" (needs vgg19_weights)
    vgg19_weights: str | None = None  # torchvision-format VGG19 state dict (local file)


@dataclasses.dataclass
class OptimSpec:
    """Adam with a step decay after half the epochs of each stage."""

    lr: float = 1e-4
    lr_stage2: float | None = None  # stage 2's starting lr (None: the same as lr, as in the paper)
    betas: tuple[float, float] = (0.9, 0.99)
    lr_decay: float = 0.95
    decay_after: float = 0.5  # fraction of a stage's epochs after which the lr decays per epoch


@dataclasses.dataclass
class TrainSpec:
    """What one training run does: stages, patches, EMA, validation split, segmenter."""

    epochs_stage1: int = 100
    epochs_stage2: int = 100
    patch_size: int = 256
    batch_size: int = 16
    patches_per_epoch: int = 1024  # per worker
    ema_decay: float = 0.999
    val_fraction: float = 0.2  # of patients (by patient_key), at least one
    val_slices: int = 8  # slices per validation series (evenly spaced)
    seed: int = 0
    target_protocol: str = "M80"
    protocols: tuple[str, ...] = ("FBP", "IR", "M40", "M60", "M80", "OPT")
    segmenter: str | None = None  # model URI of the reference segmenter (Dice, perceptual features)
    threads_per_worker: int = 1


@dataclasses.dataclass
class ModelSpec:
    """A model spec (models/*.yaml): a harmonizer (generator + GAN training) or a segmenter."""

    name: str = "cpu-small"
    kind: str = "harmonizer"  # "harmonizer" or "segmenter"
    intensity: IntensitySpec = dataclasses.field(default_factory=IntensitySpec)
    generator: GeneratorSpec = dataclasses.field(default_factory=GeneratorSpec)
    discriminator: DiscriminatorSpec = dataclasses.field(default_factory=DiscriminatorSpec)
    unet: UNetSpec = dataclasses.field(default_factory=UNetSpec)
    loss: LossSpec = dataclasses.field(default_factory=LossSpec)
    optim: OptimSpec = dataclasses.field(default_factory=OptimSpec)
    train: TrainSpec = dataclasses.field(default_factory=TrainSpec)

    def __post_init__(self) -> None:
        if self.kind not in ("harmonizer", "segmenter"):
            raise ValueError(f"kind must be 'harmonizer' or 'segmenter', got {self.kind!r}")
