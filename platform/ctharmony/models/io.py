"""Save and load :class:`HUModel` folders: a spec YAML + a state dict, never a pickled module.

A saved model is a folder::

    spec.yaml     the resolved ModelSpec (intensity window, network sizes, kind)
    weights.pt    the network's state dict (read back with ``torch.load(weights_only=True)``)
    info.json     kind, name, version, intensity, spec name

MLflow logging of that folder (``log_model``, ``models:/`` URIs) lives in :mod:`ctharmony.tracking.models`,
so the networks stay a leaf. No ``torch.export`` is involved, so any image size works.

Example:
    >>> import tempfile
    >>> from ctharmony.models import build
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     folder = save_model(build("cpu-small"), f"{tmp}/h")
    ...     load_saved(folder).info["kind"]
    'harmonizer'
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import yaml

from ctharmony.models.errors import ModelLoadError
from ctharmony.models.hu_model import HUModel
from ctharmony.models.registry import build_network
from ctharmony.models.spec import ModelSpec
from ctharmony.models.typed_yaml import ConfigError, dump_yaml, from_dict

SPEC_FILE, WEIGHTS_FILE, INFO_FILE = "spec.yaml", "weights.pt", "info.json"
ARTIFACT_KEY = "hu_model"


def save_model(model: HUModel, path: str | Path) -> Path:
    """Write ``model`` to folder ``path`` (spec.yaml, weights.pt, info.json); returns the folder."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    (out / SPEC_FILE).write_text(dump_yaml(model.spec), encoding="utf-8")
    torch.save({k: v.detach().cpu() for k, v in model.net.state_dict().items()}, out / WEIGHTS_FILE)
    (out / INFO_FILE).write_text(json.dumps(model.info, indent=2), encoding="utf-8")
    return out


def _find_saved(root: Path) -> Path:
    if (root / SPEC_FILE).is_file() and (root / WEIGHTS_FILE).is_file():
        return root
    for spec in sorted(root.rglob(SPEC_FILE)):
        if (spec.parent / WEIGHTS_FILE).is_file():
            return spec.parent
    raise ModelLoadError(f"{root} holds no ctharmony model ({SPEC_FILE} + {WEIGHTS_FILE})")


def load_saved(path: str | Path, version: str | None = None) -> HUModel:
    """Rebuild an :class:`HUModel` from a folder written by :func:`save_model` (or one containing it)."""
    root = Path(path)
    if not root.exists():
        raise ModelLoadError(f"model path {root} does not exist")
    folder = _find_saved(root)
    try:
        spec_text = (folder / SPEC_FILE).read_text(encoding="utf-8")
        spec = from_dict(ModelSpec, yaml.safe_load(spec_text), str(folder / SPEC_FILE))
    except (ConfigError, yaml.YAMLError) as err:
        raise ModelLoadError(f"invalid model spec {folder / SPEC_FILE}: {err}") from err
    info: dict[str, Any] = {}
    if (folder / INFO_FILE).is_file():
        info = json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))
    net = build_network(spec)
    try:
        state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    except (RuntimeError, OSError, ValueError) as err:
        raise ModelLoadError(f"cannot load weights {folder / WEIGHTS_FILE}: {err}") from err
    model = HUModel(net, spec, version=version or str(info.get("version", "0")))
    return model.eval()
