"""The CLI: instant --help, info, and the MLflow UI served on loopback (started, queried, stopped)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from typer.testing import CliRunner

from ctharmony.cli import app
from ctharmony.net import free_port, wait_http

CLI = [sys.executable, "-m", "ctharmony.cli"]


def test_help_lists_commands_without_heavy_imports():
    heavy = "('ray', 'torch', 'mlflow', 'pydicom', 'SimpleITK')"
    code = f"import sys; from ctharmony.cli import app; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
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
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True)
        local_addresses = {line.split()[3] for line in listening.stdout.splitlines() if line.strip()}
        if listening.returncode == 0:
            assert local_addresses == {f"127.0.0.1:{port}"}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert (isolated_home / "mlflow.db").exists()
