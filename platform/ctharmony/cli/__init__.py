"""The ``ctharmony`` command line: one Typer app, one module per verb group, each thin over the package.

Heavy libraries (Ray, torch, MLflow, pydicom) are imported inside the commands so that ``--help``
answers instantly. Every command here works end to end; nothing is exposed before it does. Commands
check their files, specs and model URIs (:mod:`ctharmony.cli.preflight`) before any cluster starts, and a
bad one ends the command with one line on stderr (exit code 2).
"""

from __future__ import annotations

from ctharmony.cli import archive, convert, evaluate, info, train, workflows  # noqa: F401 - they add the commands
from ctharmony.cli.common import app

__all__ = ["app"]
