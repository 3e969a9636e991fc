"""A code-only upload for ``ray job submit``: the job script and the ctharmony package, nothing else.

``ray job submit --working-dir .`` zips the whole checkout: with the data home, MLflow artifacts,
checkpoints or DICOM (which has no suffix to exclude) inside it, the upload balloons and the job dies
with ``Failed to download runtime_env file package gcs://_ray_pkg_... prematurely deleted``.
:func:`stage_job_code` copies only code into a fresh folder::

    <dest>/work/<script>.py      the job's working dir: the job script alone
    <dest>/ctharmony/...         the package (``py_modules``): sources and package data, no caches

Example:
    >>> staged = stage_job_code(tmp_path, "convert_archive.py")  # doctest: +SKIP
    >>> staged.runtime_env()  # doctest: +SKIP
    {'working_dir': '/tmp/.../work', 'py_modules': ['/tmp/.../ctharmony']}
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import ctharmony

JOBS_DIR = Path(__file__).resolve().parents[3] / "jobs"
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


def stage_job_code(dest: str | Path, script: str, *, jobs_dir: Path | None = None,
                   package: Path | None = None) -> StagedJob:
    """Copy ``jobs_dir/script`` (default: the checkout's ``jobs/``) and the package's code files under ``dest``."""
    source = (jobs_dir or JOBS_DIR) / script
    if not source.is_file():
        raise FileNotFoundError(f"job script {source} not found (jobs/ ships with the source checkout)")
    package = package or package_dir()
    dest = Path(dest)
    work = dest / "work"
    work.mkdir(parents=True, exist_ok=False)
    shutil.copy2(source, work / source.name)
    target = dest / package.name
    for path in sorted(package.rglob("*")):
        if path.is_file() and path.suffix in PACKAGE_SUFFIXES and "__pycache__" not in path.parts:
            copy = target / path.relative_to(package)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, copy)
    if not (target / "__init__.py").is_file():
        raise FileNotFoundError(f"{package} is not a Python package (no __init__.py)")
    return StagedJob(work, target, source.name)
