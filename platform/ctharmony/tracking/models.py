"""MLflow face of ctharmony models: log a saved model folder as a ``pyfunc`` model, load it back by URI.

:func:`log_model` logs the folder written by :func:`ctharmony.models.io.save_model` as the artifact of an
MLflow ``pyfunc`` model (so it can be registered, aliased and served; its requirements pin
``ctharmony==<this version>`` and its ``MLmodel`` records no path of this machine), and
:func:`fetch_logged_model` (the MLflow format of :func:`ctharmony.loaders.load_model`) resolves
``models:/<name>/<version>``, ``models:/<name>@<alias>``, ``runs:/<run_id>/<path>`` or a local folder,
downloads it and rebuilds the network from its spec.

Example::

    from ctharmony.models import build
    info = log_model(build("liver-unet"), "segmenter", registered_model_name="my-unet")
    ctharmony.loaders.load_model("models:/my-unet/1").info["kind"]
    # -> 'segmenter'
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ctharmony.models.hu_model import HUModel
from ctharmony.models.io import ARTIFACT_KEY, ModelLoadError, load_saved, save_model

REGISTERED = {"harmonizer": "ctharmony-harmonizer", "segmenter": "ctharmony-liver-unet"}


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


def fetch_logged_model(uri_or_path: str | Path) -> HUModel:
    """A ctharmony model from ``models:/...``, ``runs:/...``, another MLflow artifact URI, or a local folder.

    The MLflow format of :func:`ctharmony.loaders.load_model`, the one public loader: call that instead.
    """
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
    from ctharmony.tracking import pyfunc

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
