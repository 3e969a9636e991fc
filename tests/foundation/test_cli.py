"""The CLI: instant --help, info, and the MLflow UI served on loopback (started, queried, stopped)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctharmony.cli import app
from ctharmony.net import free_port
from testkit.listening import listening_sockets, wait_http

CLI = [sys.executable, "-m", "ctharmony.cli"]


def test_help_lists_commands_without_heavy_imports():
    heavy = "('ray', 'torch', 'mlflow', 'pydicom', 'SimpleITK')"
    code = f"import sys; from ctharmony.cli import app; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         encoding="utf-8", errors="replace", check=True)
    assert out.stdout.strip() == "[]"
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "info" in result.output and "ui" in result.output


def test_info_reports_cluster_store_and_home(isolated_home: Path):
    result = CliRunner().invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    assert "embedded local Ray cluster" in result.output
    assert f"sqlite:///{isolated_home}/mlflow.db" in result.output
    assert str(isolated_home) in result.output
    assert f"Pseudonym salt: {isolated_home / 'pseudonym-salt'}" in result.output


def test_info_names_where_the_salt_comes_from_never_the_salt(monkeypatch):
    monkeypatch.setenv("CTHARMONY_PSEUDONYM_SALT", "secret-salt-value")
    result = CliRunner().invoke(app, ["info"])
    assert "Pseudonym salt: $CTHARMONY_PSEUDONYM_SALT" in result.output
    assert "secret-salt-value" not in result.output


def test_info_connects_to_ray(ray_local):
    result = CliRunner().invoke(app, ["info", "--connect"])
    assert result.exit_code == 0, result.output
    assert "1 node, 4 CPUs" in result.output


def test_ui_serves_mlflow_on_loopback_and_stops(isolated_home: Path):
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "ui", "--port", str(port)], env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        assert wait_http(f"http://127.0.0.1:{port}/health", timeout_s=90), "MLflow UI did not answer"
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search",
            data=json.dumps({"max_results": 10}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            names = [e["name"] for e in json.load(response)["experiments"]]
        assert "Default" in names
        sockets = listening_sockets(proc.pid)
        assert port in {s.port for s in sockets} and all(s.loopback for s in sockets), sockets
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert (isolated_home / "mlflow.db").exists()


def test_ui_warns_that_a_non_loopback_host_exposes_an_unauthenticated_server(monkeypatch):
    import ctharmony.cli.info

    started = []
    monkeypatch.setattr(ctharmony.cli.info.os, "execv", lambda exe, args: started.append(args))
    monkeypatch.setattr("ctharmony.net.free_port", lambda host="127.0.0.1": 5999)  # bind nothing here
    for host, warned in (("0.0.0.0", True), ("192.0.2.10", True), ("127.0.0.1", False), ("::1", False),
                         ("localhost", False)):
        result = CliRunner().invoke(app, ["ui", "--host", host])
        assert result.exit_code == 0, result.output
        assert ("no authentication" in result.output) is warned, (host, result.output)
        assert started[-1][started[-1].index("--host") + 1] == host


# --- checks before any cluster starts (ctharmony.cli.preflight) ----------------------------------------------------


@pytest.fixture
def empty_store(tmp_path: Path):
    """A fresh, empty MLflow store in force for one test (the session's store is restored afterwards)."""
    import mlflow

    from ctharmony import tracking

    old = os.environ.get(tracking.ENV_URI)
    os.environ[tracking.ENV_URI] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    try:
        uri = tracking.configure()
        mlflow.MlflowClient().search_experiments()  # create the tables now: MLflow logs that on first use
        yield uri
    finally:
        if old is None:
            os.environ.pop(tracking.ENV_URI, None)
        else:
            os.environ[tracking.ENV_URI] = old
        mlflow.set_tracking_uri(tracking.tracking_uri())


@pytest.fixture
def no_cluster(monkeypatch):
    """Fail the test if a command tries to start or join Ray."""
    from ctharmony import cluster

    def connect(*args, **kwargs):
        raise ClusterStarted

    monkeypatch.setattr(cluster, "connect", connect)


class ClusterStarted(Exception):
    """Raised by the `no_cluster` spy: the command got past its checks and reached `cluster.connect`."""


def _register_champion(name: str = "ctharmony-liver-unet") -> str:
    import mlflow

    client = mlflow.MlflowClient()
    client.create_registered_model(name)
    version = client.create_model_version(name, source="file:///nowhere/model").version
    client.set_registered_model_alias(name, "champion", version)
    return f"models:/{name}@champion"


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    """An empty but valid catalog (the contract's columns, no rows)."""
    from ctharmony.archive.catalog import catalog_frame, write_catalog

    return write_catalog(catalog_frame([]), tmp_path / "catalog.parquet")


def test_train_without_a_segmenter_or_a_champion_fails_in_one_line(empty_store, no_cluster, catalog_file):
    result = CliRunner().invoke(app, ["train", "--catalog", str(catalog_file)])
    line = _one_line_error(result)
    assert "--segmenter" in line and "models:/ctharmony-liver-unet@champion" in line and empty_store in line


def test_train_without_a_segmenter_uses_the_registered_champion(empty_store, no_cluster, catalog_file, caplog):
    champion = _register_champion()
    with caplog.at_level("INFO", logger="ctharmony.cli.preflight"):
        result = CliRunner().invoke(app, ["train", "--catalog", str(catalog_file)])
    assert isinstance(result.exception, ClusterStarted), result.output  # the checks passed
    assert f"using the registered {champion}" in caplog.text


def test_a_logged_model_id_or_a_registered_version_passes_the_checks(empty_store, no_cluster, catalog_file):
    import mlflow

    client = mlflow.MlflowClient()
    logged = client.create_logged_model(client.create_experiment("e"), name="segmenter")
    for segmenter in (f"models:/{logged.model_id}", _register_champion().replace("@champion", "/1")):
        result = CliRunner().invoke(app, ["train", "--catalog", str(catalog_file), "--segmenter", segmenter])
        assert isinstance(result.exception, ClusterStarted), result.output
    result = CliRunner().invoke(app, ["train", "--catalog", str(catalog_file), "--segmenter", "models:/m-0123"])
    assert "--segmenter models:/m-0123: not found" in _one_line_error(result)


@pytest.mark.parametrize(("args", "expected"), [
    (["--catalog", "{tmp}/missing.parquet"], "--catalog {tmp}/missing.parquet: no such file"),
    (["--set", "train.epochs=3"], "unknown key(s) train.epochs"),
    (["--spec", "no-such-spec"], "unknown model spec 'no-such-spec'"),
    (["--spec", "liver-unet"], "a segmenter spec"),
    (["--segmenter", "models:/ctharmony-liver-unet/7"], "--segmenter models:/ctharmony-liver-unet/7: not found"),
    (["--segmenter", "{tmp}/no-model"], "no such file or folder"),
    (["--autoscaling-config", "{tmp}/cluster.yaml"], "--autoscaling-config {tmp}/cluster.yaml: no such file"),
])
def test_train_checks_its_options_before_any_cluster(empty_store, no_cluster, catalog_file, tmp_path, args, expected):
    args = [a.format(tmp=tmp_path) for a in args]
    result = CliRunner().invoke(app, ["train", "--catalog", str(catalog_file), *args])
    assert expected.format(tmp=tmp_path) in _one_line_error(result)


def test_sweep_needs_a_segmenter_and_checks_its_space(empty_store, no_cluster, catalog_file, tmp_path):
    line = _one_line_error(CliRunner().invoke(app, ["sweep", "--catalog", str(catalog_file)]))
    assert "no --segmenter given" in line
    _register_champion()
    result = CliRunner().invoke(app, ["sweep", "--catalog", str(catalog_file), "--space", str(tmp_path / "s.yaml")])
    assert f"--space {tmp_path / 's.yaml'}: no such file" in _one_line_error(result)


def test_convert_checks_catalog_and_models_before_any_cluster(empty_store, no_cluster, catalog_file, tmp_path):
    model = tmp_path / "harmonizer"
    model.mkdir()
    base = ["convert", "--out", str(tmp_path / "out")]
    cases = {
        "--catalog": [
            "--catalog", str(tmp_path / "nope.parquet"), "--harmonizer", str(model), "--segmenter", str(model)],
        "--harmonizer models:/ctharmony-harmonizer@champion: not found": [
            "--catalog", str(catalog_file), "--harmonizer", "models:/ctharmony-harmonizer@champion",
            "--segmenter", str(model)],
        "no --segmenter given": ["--catalog", str(catalog_file), "--harmonizer", str(model)],
    }
    for expected, args in cases.items():
        assert expected in _one_line_error(CliRunner().invoke(app, [*base, *args]))
    assert not (tmp_path / "out").exists()


def test_evaluate_and_train_segmenter_check_their_files(empty_store, catalog_file, tmp_path):
    result = CliRunner().invoke(app, ["evaluate", "--results", str(tmp_path / "r.parquet"), "--out", str(tmp_path)])
    assert f"--results {tmp_path / 'r.parquet'}: no such file" in _one_line_error(result)
    result = CliRunner().invoke(app, ["train-segmenter", "--catalog", str(catalog_file), "--masks", str(tmp_path),
                                      "--spec", "cpu-small"])
    assert "a harmonizer spec" in _one_line_error(result)
    result = CliRunner().invoke(app, ["train-segmenter", "--catalog", str(catalog_file), "--masks",
                                      str(tmp_path / "masks")])
    assert f"--masks {tmp_path / 'masks'}: no such folder" in _one_line_error(result)


def test_a_catalog_that_is_not_one_fails_in_one_line_before_ray(tmp_path):
    bad = tmp_path / "catalog.parquet"
    bad.write_text("not parquet", encoding="utf-8")
    result = CliRunner().invoke(app, ["convert", "--catalog", str(bad), "--harmonizer", str(tmp_path),
                                      "--segmenter", str(tmp_path), "--out", str(tmp_path / "out")])
    assert result.exit_code != 0 and "--catalog" in result.output and "Traceback" not in result.output
