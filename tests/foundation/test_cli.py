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
from ctharmony.listening import listening_sockets
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
    import ctharmony.cli

    started = []
    monkeypatch.setattr(ctharmony.cli.os, "execv", lambda exe, args: started.append(args))
    monkeypatch.setattr("ctharmony.net.free_port", lambda host="127.0.0.1": 5999)  # bind nothing here
    for host, warned in (("0.0.0.0", True), ("192.0.2.10", True), ("127.0.0.1", False), ("::1", False),
                         ("localhost", False)):
        result = CliRunner().invoke(app, ["ui", "--host", host])
        assert result.exit_code == 0, result.output
        assert ("no authentication" in result.output) is warned, (host, result.output)
        assert started[-1][started[-1].index("--host") + 1] == host
