from __future__ import annotations

import dataclasses

import mlflow

from ctharmony import tracking


@dataclasses.dataclass
class Tiny:
    lr: float = 1e-4
    loss: dict = dataclasses.field(default_factory=lambda: {"l1": 10.0, "gan": 1.0})


def test_run_logs_config_as_params_and_yaml(isolated_home):
    assert tracking.tracking_uri() == f"sqlite:///{isolated_home}/mlflow.db"
    with tracking.start_run("ctharmony-test", run_name="cfg", config=Tiny()) as run:
        mlflow.log_metric("loss", 0.5)
    got = mlflow.get_run(run.info.run_id)
    assert got.data.params == {"lr": "0.0001", "loss.l1": "10.0", "loss.gan": "1.0"}
    assert got.data.metrics["loss"] == 0.5
    text = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/config.yaml")
    assert "l1: 10.0" in text
    assert str(isolated_home / "mlartifacts") in got.info.artifact_uri
