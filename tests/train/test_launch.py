"""End to end on a tiny phantom archive: CLI segmenter training, 2-worker DDP, a killed worker, resume,
MLflow params/metrics/registered model."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
import torch
from typer.testing import CliRunner

from ctharmony.loaders import load_model
from ctharmony.models.registry import load_spec
from ctharmony.train.launch import build_trainer, train

pytestmark = pytest.mark.slow
PROTOCOLS = ("FBP", "IR", "M40", "M60", "M80", "OPT")


@pytest.fixture(scope="module")
def tiny_archive(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """3 patients x 6 protocols x 4 slices of 48 px, its catalog, and a liver U-Net trained via the CLI."""
    from ctharmony import cluster
    from ctharmony.archive.catalog import build_catalog
    from ctharmony.cli import app
    from ctharmony.phantom import generate_archive

    root = tmp_path_factory.mktemp("tiny-phantom")
    generate_archive(root, patients=3, slices=4, size=48, sites=1, seed=3)
    cluster.connect(num_cpus=4, quiet=True)
    build_catalog(root, root / "catalog.parquet", progress=False)
    result = CliRunner().invoke(app, [
        "train-segmenter", "--catalog", str(root / "catalog.parquet"), "--masks", str(root / "masks"),
        "--spec", "liver-unet", "--set", "unet.channels=4", "--set", "unet.depth=2",
        "--set", "train.epochs_stage1=2", "--set", "train.batch_size=4",
    ])
    assert result.exit_code == 0, result.output
    assert "ctharmony-liver-unet version" in result.output and "kept)" in result.output
    version = mlflow.MlflowClient().search_model_versions("name='ctharmony-liver-unet'")[0].version
    return {"root": root, "catalog": root / "catalog.parquet", "segmenter": f"models:/ctharmony-liver-unet/{version}"}


def test_segmenter_cli_logged_a_run_and_a_usable_model(tiny_archive: dict[str, object]) -> None:
    model = load_model(str(tiny_archive["segmenter"]))
    assert model.kind == "segmenter" and model.spec.unet.channels == 4
    prob = model(torch.zeros(1, 1, 40, 44))
    assert prob.shape == (1, 1, 40, 44)
    runs = mlflow.search_runs(experiment_names=["ctharmony-segmenter"], output_format="list")
    history = mlflow.MlflowClient().get_metric_history(runs[0].info.run_id, "val/dice")
    assert [m.step for m in history] == [1, 2] and all(0.0 <= m.value <= 1.0 for m in history)
    best = max(history, key=lambda m: (m.value, -m.step))  # the best validation Dice, the earlier on ties
    assert runs[0].data.metrics["best_epoch"] == best.step and runs[0].data.metrics["best/val_dice"] == best.value
    assert runs[0].data.params["kind"] == "segmenter" and runs[0].data.params["train.keep"] == "best"


def test_ddp_run_killed_after_an_epoch_resumes_and_registers(tiny_archive: dict[str, object],
                                                             tmp_path: Path) -> None:
    spec = load_spec("cpu-small", [
        "generator.channels=4", "generator.modules=1", "generator.res_blocks=1", "discriminator.channels=4",
        "train.epochs_stage1=1", "train.epochs_stage2=1", "train.patch_size=32", "train.batch_size=2",
        "train.patches_per_epoch=4", "train.val_slices=2", f"train.segmenter={tiny_archive['segmenter']}",
    ])
    storage = str(tmp_path / "ray_results")
    trainer = build_trainer(spec, tiny_archive["catalog"], workers=2, use_gpu=False, storage_path=storage,
                            name="resume-me")
    assert trainer.backend_config.backend == "gloo"  # CPU workers (GPU workers use NCCL)
    trainer.train_loop_config["crash_after_epoch"] = 1  # the last rank's process dies after epoch 1
    try:
        failed = trainer.fit().error is not None
    except Exception:  # Train V2 raises TrainingFailedError when a worker dies
        failed = True
    assert failed
    assert list((tmp_path / "ray_results" / "resume-me").glob("checkpoint_*"))

    outcome = train(spec, tiny_archive["catalog"], workers=2, storage_path=storage, name="resume-me")
    epochs = [(row["epoch"], row["stage"], row["resumed_from_epoch"], row["workers"]) for row in outcome.history]
    assert epochs == [(1, 1, 0, 2), (2, 2, 1, 2)]  # epoch 1 from the killed run, epoch 2 after resuming
    last = outcome.metrics
    for protocol in PROTOCOLS:
        for key in ("mae_hu", "psnr", "dice", "mae_hu_raw"):
            assert f"val/{key}/{protocol}" in last, key
    assert 0.0 <= last["val/dice_worst"] <= 1.0 and last["val/mae_hu"] > 0
    assert last["val/mae_hu_raw/M80"] == 0.0 and last["val/mae_hu_raw/M40"] > 0
    assert last["train/loss_g_gan"] > 0 and last["train/loss_g_percep"] >= 0  # stage 2 ran all three losses

    client = mlflow.MlflowClient()
    run = client.get_run(outcome.run_id)
    assert run.data.params["loss.l1"] == "10.0" and run.data.params["generator.channels"] == "4"
    assert run.data.params["perceptual_extractor_used"] == "segmenter"
    assert run.data.params["pairs_used"] == "15" and run.data.params["pairs_refused"] == "0"  # 3 studies x 5 inputs
    assert "training_pairs.json" in {a.path for a in client.list_artifacts(outcome.run_id)}
    assert [m.step for m in client.get_metric_history(outcome.run_id, "val/mae_hu/M40")] == [1, 2]
    harmonizer = load_model(f"models:/ctharmony-harmonizer/{outcome.registered_version}")
    assert harmonizer.info["kind"] == "harmonizer" and harmonizer.info["intensity"]["hu_min"] == -1024.0
    out = harmonizer(torch.full((1, 1, 38, 50), 80.0))  # not the training size
    assert out.shape == (1, 1, 38, 50) and torch.isfinite(out).all()


def test_dry_run_reports_the_pairs_without_training(tiny_archive: dict[str, object]) -> None:
    from ctharmony.cli import app

    result = CliRunner().invoke(app, ["train", "--catalog", str(tiny_archive["catalog"]), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "training pairs: 3 studies usable" in result.output and "FBP  used    3  refused    0" in result.output
    assert "harmonizer:" not in result.output  # nothing trained
