"""The ``ctharmony`` command line: one Typer app.

Heavy libraries (Ray, torch, MLflow, pydicom) are imported inside the commands so that ``--help``
answers instantly. Every command here works end to end; nothing is exposed before it does.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import typer

app = typer.Typer(
    name="ctharmony",
    help="Harmonize multi-protocol CT archives to the 80 keV reference look, on Ray, tracked in MLflow.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

AddressOption = Annotated[
    str | None,
    typer.Option("--address", help="Ray cluster address (default: $RAY_ADDRESS, else an embedded local cluster)."),
]
OverrideOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a spec value: key=value (repeatable), e.g. --set train.epochs=3."),
]


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    """ctharmony: CT image standardization at archive scale."""
    _setup_logging(verbose)


@app.command()
def info(
    address: AddressOption = None,
    connect: Annotated[bool, typer.Option(help="Connect to Ray and report its live resources.")] = False,
) -> None:
    """Print versions, the Ray cluster that would be used, the MLflow tracking URI and the data home."""
    from importlib import metadata

    from ctharmony import __version__, cluster, tracking
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


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="Port to serve on (0: a free one).")] = 0,
    host: Annotated[str, typer.Option(help="Interface to bind; loopback unless you mean otherwise.")] = "127.0.0.1",
) -> None:
    """Start the MLflow UI on the tracking store in force (runs until interrupted)."""
    from ctharmony import tracking
    from ctharmony.net import free_port

    uri = tracking.configure()
    port = port or free_port(host)
    args = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri]
    root = tracking.artifact_root()
    if root is not None:
        args += ["--artifacts-destination", str(root)]
    args += ["--host", host, "--port", str(port), "--workers", "1"]
    typer.echo(f"MLflow UI on http://{host}:{port}  (store: {uri}); Ctrl-C to stop", err=True)
    sys.stdout.flush()
    os.execv(sys.executable, args)  # replace this process: signals reach the server directly


# --- new commands go above this line (keep each one a thin wrapper over the package) ---

if __name__ == "__main__":  # pragma: no cover
    app()
