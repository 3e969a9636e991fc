"""A user's own segmenter (TorchScript, ONNX; 2-D or 3-D) runs through the loader registry, convert and evaluate.

The "user's" networks are exports of ctharmony's own liver U-Net (same weights), so their masks must be the
native model's. The last layer's weights are scaled up so that logits sit far from 0 and float rounding
between runtimes never flips a voxel; the masks still hold both liver and background.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from ctharmony.infer.model_source import load_source, resolve_model_source
from ctharmony.infer.predictors import SegmenterPredictor
from ctharmony.loaders import ModelLoadError, find_format, load_model
from ctharmony.models import build
from ctharmony.models.io import save_model


class _Volume3D(torch.nn.Module):
    """A '3-D' network: the 2-D U-Net over every slice of a (1, 1, Z, H, W) volume."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z, h, w = x.shape[2], x.shape[3], x.shape[4]
        return self.net(x.reshape(z, 1, h, w)).reshape(1, 1, z, h, w)


def _sidecar(path: Path, native, **extra) -> Path:
    spec = {"kind": "segmenter", "intensity": {"hu_min": native.spec.intensity.hu_min,
                                               "hu_max": native.spec.intensity.hu_max},
            "size_multiple": native.size_multiple, "output": "logits", **extra}
    Path(f"{path}.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def user_models(tmp_path_factory):
    """The native segmenter folder and its TorchScript (2-D and 3-D) and ONNX exports, with sidecars."""
    torch.manual_seed(0)
    native = build("liver-unet").eval()
    with torch.no_grad():
        native.net.out.weight.mul_(200.0)
        native.net.out.bias.fill_(0.0)
    root = tmp_path_factory.mktemp("user-models")
    example = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        traced = torch.jit.trace(native.net, example)
        traced3d = torch.jit.trace(_Volume3D(native.net), example[:1, :, None].repeat(1, 1, 3, 1, 1))
    torch.jit.save(traced, root / "liver.pt")
    torch.jit.save(traced3d, root / "liver3d.ts")
    torch.onnx.export(native.net, (example,), root / "liver.onnx", dynamo=False, input_names=["x"],
                      output_names=["logits"], dynamic_axes={"x": {0: "n", 2: "h", 3: "w"},
                                                             "logits": {0: "n", 2: "h", 3: "w"}})
    return {
        "native": str(save_model(native, root / "native")),
        "torchscript": str(_sidecar(root / "liver.pt", native, name="user-liver-ts")),
        "torchscript3d": str(_sidecar(root / "liver3d.ts", native, dims=3)),
        "onnx": str(_sidecar(root / "liver.onnx", native, name="user-liver-onnx", version="7")),
        "state_dict": str(torch.save(native.net.state_dict(), root / "state.pt") or root / "state.pt"),
    }


def test_each_format_accepts_its_own_references(user_models):
    names = {key: getattr(find_format(path), "name", None) for key, path in user_models.items()}
    assert names == {"native": "ctharmony", "torchscript": "torchscript", "torchscript3d": "torchscript",
                     "onnx": "onnx", "state_dict": None}  # a plain state dict is no model
    assert find_format("models:/ctharmony-liver-unet@champion").name == "mlflow"
    with pytest.raises(ModelLoadError, match="not a model any format accepts"):
        resolve_model_source(user_models["state_dict"])
    with pytest.raises(ModelLoadError, match="no model format accepts"):
        load_model(user_models["state_dict"])


def test_user_models_give_the_native_masks_on_a_batch(user_models):
    """2-D TorchScript, 2-D ONNX and a 3-D TorchScript volume model through the segmenter predictor."""
    rng = np.random.default_rng(0)
    volume = rng.normal(60, 300, (5, 40, 52)).astype(np.float32)  # not a multiple of the U-Net's 8
    batch = {"series_key": np.array(["s"]), "hu": volume[None], "hu_harmonized": volume[None] + 30,
             "status": np.array(["ok"]), "reason": np.array([""])}
    native = SegmenterPredictor(user_models["native"], device="cpu", amp="fp32", channels_last=False)(batch)  # as
    # the exports run (CPU auto gives ctharmony's own networks bf16 channels-last: ctharmony.infer.cpu_precision)
    masks = native["mask_original"][0]
    assert 0.05 < masks.mean() < 0.95  # both liver and background: the comparison means something
    for key in ("torchscript", "onnx", "torchscript3d"):
        out = SegmenterPredictor(user_models[key], device="cpu")(batch)
        assert out["status"].tolist() == ["ok"], (key, out["reason"])
        np.testing.assert_array_equal(out["mask_original"][0], masks, err_msg=key)
        np.testing.assert_array_equal(out["mask_harmonized"][0], native["mask_harmonized"][0], err_msg=key)
    model = load_source(user_models["onnx"])
    assert model.info["name"] == "user-liver-onnx" and model.info["version"] == "7"
    assert load_source(user_models["torchscript3d"]).dims == 3


def test_sidecar_is_required_and_checked(user_models, tmp_path):
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(Path(user_models["onnx"]).read_bytes())
    with pytest.raises(ModelLoadError, match=r"needs its sidecar .*bare\.onnx\.yaml"):
        load_source(str(bare))
    Path(f"{bare}.yaml").write_text("kind: segmenter\n", encoding="utf-8")
    with pytest.raises(ModelLoadError, match="must give intensity"):
        load_source(str(bare))
    Path(f"{bare}.yaml").write_text("kind: segmenter\nintensity: {hu_min: 0, hu_max: 1}\nhu_window: 3\n",
                                    encoding="utf-8")
    with pytest.raises(ModelLoadError, match=r"unknown key\(s\) hu_window in .*bare\.onnx\.yaml"):
        load_source(str(bare))


@pytest.mark.slow
def test_convert_and_evaluate_with_torchscript_and_onnx_segmenters(user_models, subset_catalog, model_paths,
                                                                  tmp_path):
    from ctharmony.evaluate.run import evaluate
    from ctharmony.infer.pipeline import ConvertOptions, convert_archive

    catalog = subset_catalog(tmp_path / "catalog.parquet", ("M40", "M80"))
    # fp32 NCHW throughout, as the exports run (CPU auto gives ctharmony's own networks bf16 channels-last)
    options = ConvertOptions(batch_slices=4, precision="fp32", channels_last=False, progress_interval_s=0)
    runs = {}
    for key in ("native", "torchscript", "onnx"):
        results = convert_archive(catalog, model_paths[0], user_models[key], tmp_path / key, options=options)
        assert (results["status"] == "done").all(), results["reason"].tolist()
        runs[key] = results.sort_values("series_key").reset_index(drop=True)
    assert runs["torchscript"]["segmenter_name"].unique().tolist() == ["user-liver-ts"]
    assert runs["onnx"]["segmenter_name"].unique().tolist() == ["user-liver-onnx"]
    for key in ("torchscript", "onnx"):
        for native, user in zip(runs["native"].itertuples(), runs[key].itertuples(), strict=True):
            assert native.series_key == user.series_key
            for column in ("mask_original_path", "mask_harmonized_path"):
                with np.load(getattr(native, column)) as a, np.load(getattr(user, column)) as b:
                    assert a["mask"].any() and not a["mask"].all()
                    np.testing.assert_array_equal(a["mask"], b["mask"], err_msg=f"{key} {column}")
        report = evaluate([tmp_path / key / "results.parquet"], tmp_path / f"report-{key}", experiment=None,
                          catalog=catalog)
        baseline = evaluate([tmp_path / "native" / "results.parquet"], tmp_path / "report-native",
                            experiment=None, catalog=catalog)
        pd.testing.assert_frame_equal(report.cohort.summary, baseline.cohort.summary)
        assert Path(report.files.markdown).is_file()
