"""Every package shows a literal ``__all__``; importing a package is light; every exported name resolves."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "platform" / "ctharmony"
PACKAGES = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py") if p.parent.name != "cli")
HEAVY = ("torch", "ray", "pydicom", "mlflow", "SimpleITK")


def _literal_all(init: Path) -> list[str] | None:
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
    return None


@pytest.mark.parametrize("name", PACKAGES)
def test_the_package_face_is_a_literal_all_whose_names_resolve(name):
    init = PACKAGE / name / "__init__.py"
    exported = _literal_all(init)
    assert exported is not None, f"{init.relative_to(PACKAGE)} has no literal __all__"
    module = importlib.import_module(f"ctharmony.{name}")
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, missing


def test_importing_the_packages_imports_no_heavy_library():
    names = [f"ctharmony.{n}" for n in PACKAGES]
    code = (f"import sys; import {', '.join(names)}; "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120,
                         env={"PYTHONPATH": str(PACKAGE.parent), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
