"""Local head helpers that need no running Ray: the code-only job upload and the `ray job submit` command."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from ctharmony.infer.job_code import PACKAGE_SUFFIXES, stage_job_code


def _fake_checkout(root: Path) -> tuple[Path, Path]:
    """A package and a jobs/ folder with the data a user leaves around them (home, MLflow, DICOM, caches)."""
    package, jobs = root / "platform" / "pkg", root / "jobs"
    for path, data in {
        package / "__init__.py": b"", package / "core.py": b"X = 1\n", package / "rules.yaml": b"a: 1\n",
        package / "__pycache__" / "core.cpython-311.pyc": b"\0pyc",
        package / "IM00001": b"\0" * 128 + b"DICM",  # DICOM has no suffix
        package / ".ctharmony" / "mlflow.db": b"SQLite format 3\0",
        package / ".ctharmony" / "mlartifacts" / "m" / "weights.pt": b"\0" * 64,
        jobs / "convert_archive.py": b"print('job')\n", jobs / "train_gan.py": b"",
        root / ".ctharmony" / "mlflow.db": b"SQLite format 3\0",
    }.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return package, jobs


def test_staged_job_holds_the_script_and_package_code_only(tmp_path):
    package, jobs = _fake_checkout(tmp_path / "checkout")
    staged = stage_job_code(tmp_path / "stage", "convert_archive.py", jobs_dir=jobs, package=package)
    assert [p.name for p in staged.working_dir.iterdir()] == ["convert_archive.py"]
    assert sorted(str(p.relative_to(staged.package)) for p in staged.package.rglob("*") if p.is_file()) == [
        "__init__.py", "core.py", "rules.yaml"]
    assert staged.runtime_env() == {"working_dir": str(staged.working_dir), "py_modules": [str(staged.package)]}
    with pytest.raises(FileNotFoundError, match="no_such_job.py not found"):
        stage_job_code(tmp_path / "stage2", "no_such_job.py", jobs_dir=jobs, package=package)


def test_the_zips_ray_uploads_for_the_real_package_hold_no_data(tmp_path):
    from ray._private.runtime_env.packaging import create_package

    staged = stage_job_code(tmp_path / "stage", "convert_archive.py")
    names = []
    for root, parent in ((staged.working_dir, False), (staged.package, True)):  # py_modules keep their folder
        target = tmp_path / f"{root.name}.zip"
        create_package(str(root), target, include_gitignore=True, include_parent_dir=parent)
        with zipfile.ZipFile(target) as archive:
            names += [n for n in archive.namelist() if not n.endswith("/")]
    assert "convert_archive.py" in names and "ctharmony/archive/protocols.yaml" in names
    assert "ctharmony/infer/job_code.py" in names
    assert all(n.endswith(PACKAGE_SUFFIXES) for n in names), [n for n in names if not n.endswith(PACKAGE_SUFFIXES)]
    assert sum(p.stat().st_size for p in staged.files()) < 5_000_000  # sources only, whatever lies beside them


def test_submit_command_uploads_the_staged_code_and_makes_paths_absolute(tmp_path, monkeypatch):
    from ctharmony.infer.local_head import submit_command

    staged = stage_job_code(tmp_path / "stage", "convert_archive.py")
    monkeypatch.chdir(tmp_path)
    command = submit_command("http://127.0.0.1:1", ["--catalog", "c.parquet", "--harmonizer",
                                                    "models:/ctharmony-harmonizer@champion", "--segmenter",
                                                    "seg", "--out", "/abs/out"], staged)
    assert command[command.index("--working-dir") + 1] == str(staged.working_dir)
    assert json.loads(command[command.index("--runtime-env-json") + 1]) == {"py_modules": [str(staged.package)]}
    assert command[command.index("--") + 1:] == [
        "python", "convert_archive.py", "--catalog", str(tmp_path / "c.parquet"), "--harmonizer",
        "models:/ctharmony-harmonizer@champion", "--segmenter", str(tmp_path / "seg"), "--out", "/abs/out"]


def test_a_submit_refused_before_the_job_agent_is_up_is_submitted_again(monkeypatch):
    """Ray's job server can answer before the head's job agent registers (a loaded machine): the job never
    started, so it is submitted again; any other failure is the job's own and is returned at once."""
    from ctharmony.infer import local_head

    answers = [(1, f"RuntimeError: Request failed with status code 500: {local_head.NO_AGENT}, please try again"),
               (1, f"... {local_head.NO_AGENT} ..."), (0, "job succeeded")]
    calls = []

    def fake_stream(command, cwd, env, timeout_s, echo):
        calls.append(command)
        return answers[len(calls) - 1]

    monkeypatch.setattr(local_head, "_stream", fake_stream)
    monkeypatch.setattr(local_head, "AGENT_WAIT_S", 0.0)
    head = local_head.LocalHead(None, "http://127.0.0.1:1", "127.0.0.1:2", None)
    assert local_head.submit_and_stream(head, ["--out", "/o"], echo=False) == (0, "job succeeded")
    assert len(calls) == 3 and calls[0] == calls[2]
    calls.clear()
    answers[:] = [(1, "Traceback: the job itself failed")]
    assert local_head.submit_and_stream(head, ["--out", "/o"], echo=False)[0] == 1 and len(calls) == 1
