"""A code-only upload for ``ray job submit``: the job script and the ctharmony package, nothing else.

``ray job submit --working-dir .`` zips the whole checkout: with the data home, MLflow artifacts,
checkpoints or DICOM (which has no suffix to exclude) inside it, the upload balloons and the job dies
with ``Failed to download runtime_env file package gcs://_ray_pkg_... prematurely deleted``.
:func:`stage_job_code` copies only code into a fresh folder::

    <dest>/work/<script>.py      the job's working dir: the job script alone
    <dest>/ctharmony/...         the package (``py_modules``): sources and package data, no caches

The job script is written from :data:`JOB_COMMANDS` (each ``jobs/*.py`` of the checkout forwards to
one CLI command the same way), so an installed package needs no checkout to submit a job.

Example:
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> staged = stage_job_code(tmp.name, "convert_archive.py")
    >>> [p.name for p in staged.working_dir.iterdir()], staged.package.name
    (['convert_archive.py'], 'ctharmony')
    >>> tmp.cleanup()
    >>> 'app(["convert", *sys.argv[1:]]' in job_script_text("convert_archive.py")
    True
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import ctharmony

#: A folder to copy job scripts from instead of writing them (None: written from JOB_COMMANDS).
JOBS_DIR: Path | None = None
#: The job scripts of ``jobs/``: script -> the ``ctharmony`` command it runs.
JOB_COMMANDS = {"build_catalog.py": "catalog", "train_gan.py": "train", "sweep_lambdas.py": "sweep",
                "convert_archive.py": "convert"}
PACKAGE_SUFFIXES = (".py", ".yaml")  # sources and package data (e.g. archive/protocols.yaml)


@dataclasses.dataclass(frozen=True)
class StagedJob:
    """Where :func:`stage_job_code` put the job's code."""

    working_dir: Path
    package: Path
    script: str

    def runtime_env(self) -> dict[str, object]:
        """The job's runtime env: the script's folder as working dir, the package as a py_module."""
        return {"working_dir": str(self.working_dir), "py_modules": [str(self.package)]}

    def files(self) -> list[Path]:
        """Every file the job will upload."""
        return sorted(p for root in (self.working_dir, self.package) for p in root.rglob("*") if p.is_file())


def package_dir() -> Path:
    """The folder of the ctharmony package in use (the checkout's ``platform/ctharmony`` or site-packages)."""
    return Path(ctharmony.__file__).resolve().parent


def job_script_text(script: str) -> str:
    """The source of job script ``script``: a thin forwarder to its ``ctharmony`` command."""
    if script not in JOB_COMMANDS:
        raise FileNotFoundError(f"job script {script} not found (known: {', '.join(sorted(JOB_COMMANDS))})")
    return (f'"""Ray job entry: ``ctharmony {JOB_COMMANDS[script]}`` (written by ctharmony.infer.job_code)."""\n\n'
            "import sys\n\nfrom ctharmony.cli import app\n\n"
            f'if __name__ == "__main__":\n    app(["{JOB_COMMANDS[script]}", *sys.argv[1:]], prog_name="{script}")\n')


def stage_job_code(dest: str | Path, script: str, *, jobs_dir: Path | None = None,
                   package: Path | None = None) -> StagedJob:
    """Put job ``script`` and the package's code files under ``dest``.

    The script is copied from ``jobs_dir`` (default :data:`JOBS_DIR`) when one is given, else written
    by :func:`job_script_text`.
    """
    jobs_dir = jobs_dir or JOBS_DIR
    source = jobs_dir / script if jobs_dir is not None else None
    if source is not None and not source.is_file():
        raise FileNotFoundError(f"job script {source} not found")
    text = job_script_text(script) if source is None else None  # before any folder is made
    package = package or package_dir()
    dest = Path(dest)
    work = dest / "work"
    work.mkdir(parents=True, exist_ok=False)
    if source is not None:
        shutil.copy2(source, work / script)
    else:
        (work / script).write_text(text or "", encoding="utf-8")
    target = dest / package.name
    for path in sorted(package.rglob("*")):
        if path.is_file() and path.suffix in PACKAGE_SUFFIXES and "__pycache__" not in path.parts:
            copy = target / path.relative_to(package)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, copy)
    if not (target / "__init__.py").is_file():
        raise FileNotFoundError(f"{package} is not a Python package (no __init__.py)")
    return StagedJob(work, target, script)
