"""The built-in model formats of the loader registry; each says whether it ``accepts`` a reference.

- :class:`MLflowModel`: ``models:/``, ``runs:/``, ``mlflow-artifacts:/`` URIs, or a local MLflow model
  folder (an ``MLmodel`` file) holding a ctharmony model;
- :class:`CtharmonyFolder`: a folder written by :func:`ctharmony.models.io.save_model`;
- :class:`TorchScriptFile`: a ``.pt`` / ``.ts`` / ``.pth`` file holding a ScriptModule (``torch.jit.save``),
  with its sidecar ``<file>.yaml``;
- :class:`OnnxFile`: an ``.onnx`` file run by onnxruntime, with its sidecar ``<file>.yaml``;
- :class:`BaselineFile`: a fitted baseline (``.npz`` histogram matching, ``.json`` linear recalibration).

Example:
    >>> TorchScriptFile().accepts("weights.pt")  # a missing file (or a plain state dict) is not TorchScript
    False
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any

from ctharmony.models.errors import ModelLoadError

MLFLOW_SCHEMES = ("models:/", "runs:/", "mlflow-artifacts:/")


class ModelFormat:
    """A model format: ``accepts(reference) -> bool`` (cheap, never raises) and ``load(reference)``."""

    name = "format"
    description = ""

    def accepts(self, reference: str) -> bool:
        raise NotImplementedError

    def load(self, reference: str) -> Any:
        raise NotImplementedError


class MLflowModel(ModelFormat):
    name, description = "mlflow", "models:/name@alias, models:/name/N, runs:/id/path, or a folder with an MLmodel"

    def accepts(self, reference: str) -> bool:
        return reference.startswith(MLFLOW_SCHEMES) or (Path(reference) / "MLmodel").is_file()

    def load(self, reference: str) -> Any:
        from ctharmony.tracking.models import fetch_logged_model

        return fetch_logged_model(reference)


class CtharmonyFolder(ModelFormat):
    name, description = "ctharmony", "a folder written by ctharmony.models.io.save_model"

    def accepts(self, reference: str) -> bool:
        from ctharmony.models.io import SPEC_FILE, WEIGHTS_FILE

        folder = Path(reference)
        return (folder / SPEC_FILE).is_file() and (folder / WEIGHTS_FILE).is_file()

    def load(self, reference: str) -> Any:
        from ctharmony.models.io import load_saved

        return load_saved(reference)


def sidecar_path(path: str | Path) -> Path:
    """Where a model file's spec lives: ``<file>.yaml`` beside it (``liver.onnx`` -> ``liver.onnx.yaml``)."""
    return Path(f"{path}.yaml")


def read_sidecar(path: str | Path) -> Any:
    """The :class:`~ctharmony.models.spec.ExternalSpec` of a model file, from its sidecar YAML.

    Raises:
        ModelLoadError: the sidecar is missing, not YAML, or holds an unknown key or a bad value (names it).
    """
    import yaml

    from ctharmony.config import ConfigError, from_dict
    from ctharmony.models.spec import ExternalSpec

    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        raise ModelLoadError(f"{path}: a TorchScript / ONNX model needs its sidecar {sidecar} giving at least "
                          "kind (segmenter or harmonizer) and intensity: {hu_min, hu_max} (see ctharmony.loaders)")
    try:
        data = yaml.safe_load(sidecar.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{sidecar} must hold a mapping")
        if "intensity" not in data:
            raise ConfigError(f"{sidecar} must give intensity: {{hu_min, hu_max}} (the HU window the model expects)")
        return from_dict(ExternalSpec, data, str(sidecar))
    except (OSError, yaml.YAMLError, ConfigError) as err:
        raise ModelLoadError(f"invalid model sidecar {sidecar}: {err}") from err


def file_version(path: str | Path) -> str:
    """The first 12 hex digits of the file's SHA-256 (a model file's default version)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def _external(open_net: Any, path: str) -> Any:
    """``open_net(path)`` wrapped with the file's sidecar spec (read first: a missing one is the clearer error)."""
    from ctharmony.models.external import ExternalModel

    spec = read_sidecar(path)
    name = spec.name or Path(path).name
    net = open_net(path)
    return ExternalModel(net, spec, name=name, version=spec.version or file_version(path), source=path).eval()


class TorchScriptFile(ModelFormat):
    name, description = "torchscript", "a .pt/.ts/.pth TorchScript file (torch.jit.save) + <file>.yaml"
    suffixes = (".pt", ".ts", ".pth", ".jit")

    def accepts(self, reference: str) -> bool:
        path = Path(reference)
        if path.suffix.lower() not in self.suffixes or not path.is_file():
            return False
        try:  # a ScriptModule archive holds compiled code and constants; a torch.save state dict does not
            with zipfile.ZipFile(path) as archive:
                names = [n.split("/", 1)[-1] for n in archive.namelist()]
        except (OSError, zipfile.BadZipFile):
            return False
        return "constants.pkl" in names and any(n.startswith("code/") for n in names)

    def load(self, reference: str) -> Any:
        import torch

        return _external(lambda path: torch.jit.load(path, map_location="cpu"), reference)


class OnnxFile(ModelFormat):
    name, description = "onnx", "an .onnx file (run by onnxruntime) + <file>.yaml"

    def accepts(self, reference: str) -> bool:
        path = Path(reference)
        return path.suffix.lower() == ".onnx" and path.is_file()

    def load(self, reference: str) -> Any:
        from ctharmony.models.external import OnnxNet

        return _external(OnnxNet, reference)


class BaselineFile(ModelFormat):
    name, description = "baseline", "a fitted baseline (.npz histogram matching, .json linear recalibration)"

    def accepts(self, reference: str) -> bool:
        from ctharmony.baselines.files import is_baseline_file

        return is_baseline_file(reference)

    def load(self, reference: str) -> Any:
        from ctharmony.baselines.files import load_baseline

        return load_baseline(reference)
