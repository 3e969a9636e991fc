"""Local head helpers that need no Ray: the `ray job submit` command line."""

from __future__ import annotations


def test_job_arguments_become_absolute_paths(tmp_path, monkeypatch):
    from ctharmony.infer.local_head import submit_command

    monkeypatch.chdir(tmp_path)
    command = submit_command("http://127.0.0.1:1", ["--catalog", "c.parquet", "--harmonizer",
                                                    "models:/ctharmony-harmonizer@champion", "--segmenter",
                                                    "seg", "--out", "/abs/out"])
    assert command[command.index("--") + 1:] == [
        "python", "jobs/convert_archive.py", "--catalog", str(tmp_path / "c.parquet"), "--harmonizer",
        "models:/ctharmony-harmonizer@champion", "--segmenter", str(tmp_path / "seg"), "--out", "/abs/out"]
    assert command[command.index("--runtime-env-json") + 1] == '{"py_modules": ["platform/ctharmony"]}'
