from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ctharmony.loaders import ModelLoadError, load_model
from ctharmony.models import build
from ctharmony.models.io import save_model
from ctharmony.tracking.models import log_model


def _perturbed(name: str):
    model = build(name)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return model.eval()


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    model = _perturbed("cpu-small")
    save_model(model, tmp_path / "h")
    again = load_model(str(tmp_path / "h"))
    x = torch.randn(1, 1, 24, 24) * 200
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    assert again.info["intensity"] == model.info["intensity"]


def test_load_refuses_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no such file or folder"):
        load_model(str(tmp_path / "nothing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no model format accepts it"):
        load_model(str(tmp_path / "empty"))


def test_logged_model_registers_and_reloads_at_other_sizes() -> None:
    import warnings

    import mlflow

    model = _perturbed("liver-unet")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        info = log_model(model, "segmenter", registered_model_name="ctharmony-liver-unet-test")
    nags = [str(w.message) for w in caught if "type hint" in str(w.message)]
    assert not nags, nags  # the pyfunc's predict is typed (np.ndarray): MLflow has nothing to ask for
    assert model.version == str(info.registered_model_version)
    x = torch.randn(2, 1, 40, 56) * 100
    with torch.no_grad():
        expected = model(x)
    for uri in (f"models:/ctharmony-liver-unet-test/{model.version}", "models:/ctharmony-liver-unet-test/latest",
                info.model_uri):
        loaded = load_model(uri)
        with torch.no_grad():
            assert torch.allclose(loaded(x), expected, atol=1e-6)
    assert load_model(f"models:/ctharmony-liver-unet-test/{model.version}").info["version"] == model.version
    client = mlflow.MlflowClient()
    client.set_registered_model_alias("ctharmony-liver-unet-test", "champion", model.version)
    assert load_model("models:/ctharmony-liver-unet-test@champion").info["kind"] == "segmenter"
    # the generic MLflow face too, on yet another size
    pyfunc = mlflow.pyfunc.load_model(info.model_uri)
    out = pyfunc.predict(np.zeros((1, 1, 20, 28), np.float32))
    assert out.shape == (1, 1, 20, 28)
    with pytest.raises(ModelLoadError, match="cannot load model"):
        load_model("models:/ctharmony-no-such-model/1")


def test_logged_model_pins_this_ctharmony_and_records_no_local_path(tmp_path: Path) -> None:
    import mlflow
    import yaml

    from ctharmony import __version__, tracking

    info = log_model(_perturbed("liver-unet"), "segmenter")
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri, dst_path=str(tmp_path / "dl")))
    requirements = (local / "requirements.txt").read_text(encoding="utf-8").split()
    assert f"ctharmony=={__version__}" in requirements
    assert not [r for r in requirements if r.startswith("ctharmony") and r != f"ctharmony=={__version__}"]
    mlmodel = yaml.safe_load((local / "MLmodel").read_text(encoding="utf-8"))
    # MLflow itself records where the store keeps the model (artifact_path); nothing else may be a local path
    store = str(tracking.artifact_root() or "")
    mlmodel.pop("artifact_path")
    text = yaml.safe_dump(mlmodel)
    checkout = str(Path(__file__).resolve().parents[2])
    for local_path in (checkout, tempfile_root(), str(Path.home()), store):
        assert local_path not in text, (local_path, text)
    flavor = mlmodel["flavors"]["python_function"]
    assert flavor["model_code_path"] == "pyfunc.py" and (local / "pyfunc.py").is_file()
    assert flavor["artifacts"]["hu_model"] == {"path": "artifacts/hu_model"}
    reloaded = mlflow.pyfunc.load_model(info.model_uri)  # still loads through MLflow's own loader
    assert reloaded.predict(np.zeros((1, 1, 16, 16), np.float32)).shape == (1, 1, 16, 16)


def tempfile_root() -> str:
    import tempfile

    return tempfile.gettempdir()
