"""What every ``ctharmony`` verb shares: the Typer app, the common options, preflight and quiet terminals.

Heavy libraries (Ray, torch, MLflow, pydicom) are imported inside the commands so that ``--help``
answers instantly. Commands check their files, specs and model URIs (:mod:`ctharmony.cli.preflight`) before
any cluster starts, and a bad one ends the command with one line on stderr (exit code 2).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Annotated, Any, NoReturn

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
CatalogOption = Annotated[str, typer.Option("--catalog", help="Catalog Parquet file (ctharmony catalog).")]
HarmonizerSpecOption = Annotated[str, typer.Option("--spec", help="Harmonizer spec: name or YAML path.")]
OverrideOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a spec value: key=value (repeatable), e.g. --set train.epochs_stage1=3."),
]


def fail(err: Exception) -> NoReturn:
    """End the command with one line on stderr (exit code 2), no traceback."""
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(2) from err


def preflight(check: Callable[[], Any]) -> Any:
    """Run ``check`` (file, spec and model checks) before any cluster starts; a failure ends the command."""
    from ctharmony.cli.preflight import PreflightError

    try:
        return check()
    except PreflightError as err:
        fail(err)


OPTIONS = {"verbose": False}  # the app-wide -v, for commands that keep the terminal quiet


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    """ctharmony: CT image standardization at archive scale."""
    OPTIONS["verbose"] = verbose
    setup_logging(verbose)


@contextlib.contextmanager
def quiet_job(out: str, what: str) -> Iterator[Any]:
    """A long job's terminal: stage lines and results; Ray's, MLflow's and every other log in ``out``/ctharmony.log.

    ``ctharmony -v`` shows the detail live. A failure ends the command with one line naming the log.
    """
    from pathlib import Path

    from ctharmony.console import captured_output

    log_file = Path(out).resolve() / "ctharmony.log"
    try:
        with captured_output(log_file, verbose=OPTIONS["verbose"]) as console:
            console.say(f"ctharmony {what}: full log in {log_file}" + ("" if OPTIONS["verbose"] else " (-v shows it)"))
            yield console
    except Exception as err:  # noqa: BLE001 - one line, the log holds the traceback
        logging.getLogger("ctharmony").debug("failed", exc_info=True)
        typer.echo(f"error: {err}\nfull log: {log_file}", err=True)
        raise typer.Exit(1) from err


GpuOption = Annotated[bool | None, typer.Option("--gpu/--no-gpu", help="Use GPUs (default: when the cluster has "
                                                  "them or its autoscaler can start GPU workers).")]
GpusHintOption = Annotated[int | None, typer.Option("--gpus", help="GPUs the cluster can have, when its autoscaler "
                                                    "config cannot be read (a hint for planning).")]
AutoscalingConfigOption = Annotated[str | None, typer.Option(help="cluster.yaml whose GPU node types the "
                                                             "cluster can start (default: the head's).")]
