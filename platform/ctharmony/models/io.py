"""Save, load and log :class:`HUModel` s: a spec YAML + a state dict, never a pickled module.

A saved model is a folder::

    spec.yaml     the resolved ModelSpec (intensity window, network sizes, kind)
    weights.pt    the network's state dict (read back with ``torch.load(weights_only=True)``)
    info.json     kind, name, version, intensity, spec name

MLflow: :func:`log_model` logs that folder as the artifact of an MLflow ``pyfunc`` model (so it can be
registered, aliased and served; its requirements pin ``ctharmony==<this version>`` and its ``MLmodel``
records no path of this machine), and :func:`load_model` resolves ``models:/<name>/<version>``,
``models:/<name>@<alias>``, ``runs:/<run_id>/<path>`` or a local folder, downloads it and rebuilds
the network from the spec. No ``torch.export`` is involved, so any image size works.

Example:
    >>> from ctharmony.models import build
    >>> save_model(build("cpu-small"), "/tmp/h")  # doctest: +SKIP
    >>> load_model("/tmp/h").info["kind"]  # doctest: +SKIP
    'harmonizer'
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml

from ctharmony.config import ConfigError, ModelSpec, dump_yaml, from_dict
from ctharmony.models.hu_model import HUModel
from ctharmony.models.registry import build_network

SPEC_FILE, WEIGHTS_FILE, INFO_FILE = "spec.yaml", "weights.pt", "info.json"
ARTIFACT_KEY = "hu_model"
REGISTERED = {"harmonizer": "ctharmony-harmonizer", "segmenter": "ctharmony-liver-unet"}


class ModelLoadError(RuntimeError):
    """A model folder or URI could not be read; the message names it and why."""


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


def _registry_version(uri: str) -> str | None:
    """The registry version a ``models:/`` URI points at (None for other URIs)."""
    if not uri.startswith("models:/"):
        return None
    from mlflow import MlflowClient

    ref = uri[len("models:/") :].strip("/")
    client = MlflowClient()
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return str(client.get_model_version_by_alias(name, alias).version)
    name, _, version = ref.partition("/")
    if version.isdigit():
        return version
    if version in ("", "latest"):
        versions = client.search_model_versions(f"name='{name}'")
        return str(max(int(v.version) for v in versions)) if versions else None
    return None


def load_model(uri_or_path: str | Path) -> HUModel:
    """Load a model from ``models:/...``, ``runs:/...``, another MLflow artifact URI, or a local folder."""
    text = str(uri_or_path)
    if "://" not in text and ":/" not in text:
        return load_saved(text)
    if text.startswith("file://"):
        return load_saved(text[len("file://") :])
    import mlflow

    from ctharmony import tracking

    tracking.configure()
    try:
        version = _registry_version(text)
        with tempfile.TemporaryDirectory(prefix="ctharmony-model-") as tmp:
            local = mlflow.artifacts.download_artifacts(artifact_uri=text, dst_path=tmp)
            return load_saved(local, version=version)
    except ModelLoadError:
        raise
    except Exception as err:  # MlflowException, OSError: name the URI and the reason
        raise ModelLoadError(f"cannot load model {text} from {tracking.tracking_uri()}: {err}") from err


def pip_requirements() -> list[str]:
    """What a logged model needs: the exact ctharmony that wrote it, and its numerical stack."""
    from ctharmony import __version__

    return [f"ctharmony=={__version__}", "torch", "numpy", "pyyaml"]


class _PortablePyfunc:
    """MLflow's ``pyfunc`` flavor minus the local paths it records (``Model.log`` takes any flavor).

    ``mlflow.pyfunc.save_model`` keeps where each artifact was copied from (a temporary folder) and the
    absolute path of the models-from-code file; loading reads only the copies inside the model, so
    both are dropped (the code file keeps its name).
    """

    @staticmethod
    def save_model(path: str, mlflow_model: Any, **kwargs: Any) -> None:
        import mlflow.pyfunc
        from mlflow.models.model import MLMODEL_FILE_NAME

        mlflow.pyfunc.save_model(path=path, mlflow_model=mlflow_model, **kwargs)
        config = mlflow_model.flavors[mlflow.pyfunc.FLAVOR_NAME]
        for entry in (config.get("artifacts") or {}).values():
            entry.pop("uri", None)
        if config.get("model_code_path"):
            config["model_code_path"] = os.path.basename(config["model_code_path"])
        mlflow_model.save(os.path.join(path, MLMODEL_FILE_NAME))


def log_model(model: HUModel, name: str, registered_model_name: str | None = None) -> Any:
    """Log ``model`` to the active MLflow run (one is started if none) and optionally register it.

    Returns MLflow's ``ModelInfo``; when registered, ``model.version`` becomes the registry version.
    """
    import mlflow
    from mlflow.models import Model

    from ctharmony import tracking
    from ctharmony.models import pyfunc

    tracking.configure()
    started = None
    if mlflow.active_run() is None:
        experiment_id = tracking.ensure_experiment("ctharmony-models")
        started = mlflow.start_run(experiment_id=experiment_id, run_name=f"log-{name}")
    try:
        with tempfile.TemporaryDirectory(prefix="ctharmony-save-") as tmp:
            folder = save_model(model, Path(tmp) / ARTIFACT_KEY)
            info = Model.log(
                artifact_path=None,  # MLflow 3 takes `name`; the parameter is still positional
                name=name,
                flavor=_PortablePyfunc,
                python_model=str(Path(pyfunc.__file__)),
                artifacts={ARTIFACT_KEY: str(folder)},
                registered_model_name=registered_model_name,
                pip_requirements=pip_requirements(),
                metadata={"ctharmony": model.info},
            )
        if registered_model_name and info.registered_model_version is not None:
            model.version = str(info.registered_model_version)
        return info
    finally:
        if started is not None:
            mlflow.end_run()
