"""Build networks and models by name: an explicit name -> builder dict, no import side effects.

Spec names resolve to ``<name>.yaml`` in the package's ``specs/`` folder (package data, so an installed
wheel and a job's uploaded package find them too; ``$CTHARMONY_SPECS`` names another folder); a path to a
YAML file or a :class:`~ctharmony.models.spec.ModelSpec` works too.

Example:
    >>> model = build("liver-unet")
    >>> model.kind
    'segmenter'
    >>> load_spec("cpu-small", ["loss.l1=3"]).loss.l1
    3.0
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from torch import nn

from ctharmony.models.discriminator import UNetDiscriminatorSN
from ctharmony.models.generator import HFSGenerator
from ctharmony.models.hu_model import HUModel
from ctharmony.models.spec import ModelSpec
from ctharmony.models.typed_yaml import ConfigError, from_dict, load_config, merge, parse_overrides, to_dict
from ctharmony.models.unet import UNet2D

#: The shipped specs: package data beside the code (``ctharmony/specs/*.yaml``).
SPECS_DIR = Path(__file__).resolve().parent.parent / "specs"


def _generator(spec: ModelSpec) -> nn.Module:
    g = spec.generator
    return HFSGenerator(
        channels=g.channels, modules=g.modules, res_blocks=g.res_blocks, unshuffle=g.unshuffle
    )


def _segmenter(spec: ModelSpec) -> nn.Module:
    return UNet2D(channels=spec.unet.channels, depth=spec.unet.depth, norm=spec.unet.norm)


def _discriminator(spec: ModelSpec) -> nn.Module:
    d = spec.discriminator
    return UNetDiscriminatorSN(channels=d.channels, skip_connection=d.skip_connection)


# kind -> builder of the network an HUModel wraps
NETWORKS: dict[str, Callable[[ModelSpec], nn.Module]] = {"harmonizer": _generator, "segmenter": _segmenter}
# the discriminator is a training-only component
DISCRIMINATORS: dict[str, Callable[[ModelSpec], nn.Module]] = {"unet-sn": _discriminator}


def specs_dir() -> Path:
    """Folder holding the named specs: ``$CTHARMONY_SPECS`` or the package's ``specs/``."""
    return Path(os.environ.get("CTHARMONY_SPECS", SPECS_DIR))


def load_spec(name_or_path: str | Path | ModelSpec, overrides: Sequence[str] = ()) -> ModelSpec:
    """A spec by name (``cpu-small``), by YAML path, or as given; ``overrides`` are ``key=value``."""
    if isinstance(name_or_path, ModelSpec):
        if overrides:
            return from_dict(ModelSpec, merge(to_dict(name_or_path), parse_overrides(overrides)), "spec")
        return name_or_path
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = specs_dir() / f"{name_or_path}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in specs_dir().glob("*.yaml"))
            raise ConfigError(f"unknown model spec {name_or_path!r}: no {path} (known: {', '.join(known)})")
    return load_config(ModelSpec, path, overrides)


def build_network(spec: ModelSpec) -> nn.Module:
    """The bare network of a spec (generator for a harmonizer, U-Net for a segmenter)."""
    return NETWORKS[spec.kind](spec)


def build_discriminator(spec: ModelSpec, name: str = "unet-sn") -> nn.Module:
    """The GAN discriminator for a harmonizer spec."""
    return DISCRIMINATORS[name](spec)


def build(name_or_spec: str | Path | ModelSpec, overrides: Sequence[str] = ()) -> HUModel:
    """A freshly initialised :class:`HUModel` from a spec name, path or object."""
    spec = load_spec(name_or_spec, overrides)
    return HUModel(build_network(spec), spec)
