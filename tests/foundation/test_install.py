"""A non-editable install (what README tells GPU clusters to do) works from any folder, with no checkout.

The wheel is built from a copy of the sources, installed with ``--no-deps`` into a fresh venv whose
dependencies resolve through a ``.pth`` line to this project's site-packages (nothing is downloaded),
and used from a folder outside the checkout: specs, sweep space, protocol rules and site YAMLs come
from package data; the CLI answers; a job is staged from the installed package alone; the first
stages of the demo (phantom archive, Ray Data catalog) run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, encoding="utf-8", errors="replace",
                            timeout=timeout, check=False)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A fresh venv holding ctharmony from a wheel, and a work folder outside the checkout."""
    root = tmp_path_factory.mktemp("install")
    source = root / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    shutil.copytree(REPO / "platform", source / "platform", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w",
          str(root / "dist"), str(source)], root, env)
    wheel = next((root / "dist").glob("ctharmony-*.whl"))
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], root, env)
    python = venv / "bin" / "python"
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], root, env).strip()
    # dependencies (and pip) from this project's venv, after the new venv's own site-packages
    Path(purelib, "project-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], root, env)
    work = root / "work"
    work.mkdir()
    env.update(CTHARMONY_HOME=str(root / "home"), PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    env.pop("MLFLOW_TRACKING_URI", None)
    return {"wheel": wheel, "python": python, "bin": venv / "bin", "work": work, "env": env, "purelib": Path(purelib)}


@pytest.mark.slow
def test_the_wheel_ships_every_yaml_of_the_package(installed):
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    expected = {f"ctharmony/{p.relative_to(REPO / 'platform' / 'ctharmony').as_posix()}"
                for p in (REPO / "platform" / "ctharmony").rglob("*.yaml")}
    assert {"ctharmony/specs/cpu-small.yaml", "ctharmony/train/sweep/space.yaml",
            "ctharmony/archive/protocols.yaml"} <= expected
    assert expected <= names, sorted(expected - names)


@pytest.mark.slow
def test_the_installed_package_finds_its_data_outside_the_checkout(installed):
    code = (
        "import ctharmony, json\n"
        "from ctharmony.models.registry import load_spec, build\n"
        "from ctharmony.train.sweep.space import SweepSpace\n"
        "from ctharmony.archive.protocols import DEFAULT_RULES\n"
        "from ctharmony.infer.job_code import stage_job_code\n"
        "from ctharmony.tracking.models import pip_requirements\n"
        "import tempfile\n"
        "specs = {n: load_spec(n).kind for n in ('cpu-small', 'paper', 'liver-unet')}\n"
        "build('liver-unet')\n"
        "staged = stage_job_code(tempfile.mkdtemp(), 'convert_archive.py')\n"
        "print(json.dumps({'file': ctharmony.__file__, 'specs': specs, 'space': SweepSpace.load().keys,\n"
        "                  'rules': DEFAULT_RULES.is_file(), 'requirements': pip_requirements(),\n"
        "                  'job': sorted(p.name for p in staged.working_dir.iterdir()),\n"
        "                  'staged_specs': sorted(p.name for p in (staged.package / 'specs').iterdir())}))\n"
    )
    import json

    out = json.loads(_run([str(installed["python"]), "-c", code], installed["work"], installed["env"]).splitlines()[-1])
    assert Path(out["file"]).is_relative_to(installed["purelib"]), out["file"]  # not the checkout
    assert out["specs"] == {"cpu-small": "harmonizer", "paper": "harmonizer", "liver-unet": "segmenter"}
    assert out["space"] and out["rules"] and out["job"] == ["convert_archive.py"]
    from ctharmony import __version__

    assert f"ctharmony=={__version__}" in out["requirements"]  # a logged model pins the package that wrote it
    assert out["staged_specs"] == ["cpu-small.yaml", "cpu-texture.yaml", "liver-unet.yaml", "paper.yaml"]


@pytest.mark.slow
def test_the_installed_cli_answers_and_runs_the_first_demo_stages(installed):
    ctharmony, work, env = str(installed["bin"] / "ctharmony"), installed["work"], installed["env"]
    assert "embedded local Ray cluster" in _run([ctharmony, "info"], work, env)
    assert "--train-patients" in _run([ctharmony, "demo", "--help"], work, env)
    patients, protocols = 1, 6  # the phantom writes six reconstructions per study
    _run([ctharmony, "phantom", "arch", "--patients", str(patients), "--slices", "2", "--size", "32", "--sites", "1"],
         work, env)
    out = _run([ctharmony, "catalog", "arch/dicom", "--out", "arch/catalog.parquet"], work, env)
    assert f"catalog: arch/catalog.parquet ({patients * protocols} rows" in out
