"""``ctharmony info`` and ``ctharmony ui``: what is installed and in force; the MLflow UI on loopback."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from ctharmony.cli.common import (
    AddressOption,
    app,
)


@app.command()
def info(
    address: AddressOption = None,
    connect: Annotated[bool, typer.Option(help="Connect to Ray and report its live resources.")] = False,
) -> None:
    """Print versions, the Ray cluster that would be used, the MLflow tracking URI and the data home."""
    from importlib import metadata

    from ctharmony import __version__, cluster, salt, tracking
    from ctharmony.config import data_home

    typer.echo(f"ctharmony {__version__} (python {sys.version.split()[0]})")
    for package in ("ray", "torch", "mlflow", "pydicom", "highdicom", "SimpleITK", "pyarrow"):
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            version = "not installed"
        typer.echo(f"  {package:<10} {version}")
    target = cluster.resolve_address(address)
    if connect or target:
        described = cluster.connect(target, quiet=True).describe()
    else:
        cpus, gpus = cluster.local_resources()
        described = f"embedded local Ray cluster (started on demand): 1 node, {cpus} CPUs, {gpus} GPUs"
    typer.echo(f"Ray:       {described}")
    typer.echo(f"MLflow:    {tracking.tracking_uri()}")
    typer.echo(f"Data home: {data_home()}")
    typer.echo(f"Pseudonym salt: {salt.salt_source()}")


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="Port to serve on (0: a free one).")] = 0,
    host: Annotated[str, typer.Option(help="Interface to bind; loopback unless you mean otherwise.")] = "127.0.0.1",
) -> None:
    """Start the MLflow UI on the tracking store in force (runs until interrupted)."""
    from ctharmony import tracking
    from ctharmony.net import free_port

    uri = tracking.configure()
    if not tracking.is_loopback(host):
        typer.echo(f"WARNING: the MLflow server has no authentication; --host {host} lets anyone who reaches "
                   "this machine read and change every run, model and report. Prefer 127.0.0.1 and an SSH "
                   "tunnel.", err=True)
    port = port or free_port(host)
    args = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri]
    root = tracking.artifact_root()
    if root is not None:
        args += ["--artifacts-destination", str(root)]
    args += ["--host", host, "--port", str(port), "--workers", "1"]
    typer.echo(f"MLflow UI on http://{host}:{port}  (store: {uri}); Ctrl-C to stop", err=True)
    sys.stdout.flush()
    os.execv(sys.executable, args)  # replace this process: signals reach the server directly
