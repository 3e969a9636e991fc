"""The source root must never become a package named ``platform`` (it would shadow the stdlib)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_platform_has_no_init():
    assert not (REPO / "platform" / "__init__.py").exists(), "platform/__init__.py shadows stdlib 'platform'"


def test_stdlib_platform_still_works_with_repo_root_on_path():
    code = (
        "import platform, sysconfig; "
        "assert platform.__file__.startswith(sysconfig.get_paths()['stdlib']), platform.__file__; "
        "print(platform.system())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, encoding="utf-8", errors="replace", check=True,
        env={"PYTHONPATH": f"{REPO}:{REPO / 'platform'}", "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() in {"Linux", "Darwin", "Windows"}


def test_jobs_are_scripts_not_a_package():
    assert not (REPO / "jobs" / "__init__.py").exists()
