"""The package's layering, checked on the source (an AST walk over every module's imports).

- ``models`` is a leaf: networks and their specs import nothing else of ctharmony;
- ``scanmodel`` (anatomy, materials, spectra, sites: the model both synthetic scanners share) imports neither
  scanner (``phantom``, ``simulate``) nor anything above them;
- ``archive`` and ``phantom`` (data in and out) import no model, training, inference or evaluation code;
- ``infer`` imports nothing from ``evaluate``; ``evaluate`` nothing from ``train`` or ``infer``;
- ``simulate``, ``baselines`` and ``loaders`` stay below training, inference and the workflows;
- the infrastructure (``cluster``, ``config``, ``tracking``, ``console``, ``stages``, ``resource_plan``...) imports
  no domain package,
  and the archive never imports the cluster or MLflow layer;
- no package imports the CLI (it is the top of the stack).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "platform" / "ctharmony"

# package -> ctharmony packages/modules it must never import
DOMAIN = {"archive", "scanmodel", "phantom", "simulate", "baselines", "loaders", "train", "infer", "evaluate",
          "benchmark", "demo", "cli"}
WORKFLOWS = {"benchmark", "demo", "cli"}
FORBIDDEN = {
    "models": {"archive", "scanmodel", "phantom", "simulate", "train", "infer", "evaluate", "baselines", "tracking",
               "config", "cluster", "demo", "cli"},
    "scanmodel": {"archive", "phantom", "simulate", "models", "train", "infer", "evaluate", "baselines", "loaders",
                  "cluster", "tracking", *WORKFLOWS},
    "archive": {"models", "train", "infer", "evaluate", "baselines", "cluster", "tracking", *WORKFLOWS},
    "phantom": {"models", "train", "infer", "evaluate", "baselines", *WORKFLOWS},
    "simulate": {"models", "train", "infer", "baselines", "loaders", "tracking", *WORKFLOWS},
    "baselines": {"models", "train", "infer", "evaluate", "loaders", *WORKFLOWS},
    "loaders": {"train", "infer", "evaluate", *WORKFLOWS},
    "infer": {"evaluate", "train", *WORKFLOWS},
    "evaluate": {"train", "infer", *WORKFLOWS},
    "train": {"infer", *WORKFLOWS},
    "benchmark": {"demo", "cli"},
    "demo": {"benchmark", "cli"},
    "cli": set(),  # the top of the stack (nothing imports it: test_nothing_imports_the_cli)
    # the infrastructure layer (Ray connection, config, MLflow, terminal, stages) knows no domain package
    **{name: DOMAIN for name in ("cluster", "config", "tracking", "console", "stages", "net", "gpu_capacity",
                                 "resource_plan", "lazy", "salt")},
}


def ctharmony_imports(path: Path) -> set[str]:
    """The top-level ctharmony modules a file imports (``ctharmony.x.y`` -> ``x``), at any depth of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "ctharmony" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_the_walk_sees_lazy_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    source = "def f():\n    from ctharmony.evaluate import metrics\n    import ctharmony.cli\n"
    module.write_text(source, encoding="utf-8")
    assert ctharmony_imports(module) == {"evaluate", "cli"}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_its_layer(package):
    violations = []
    root = PACKAGE / package
    for path in sorted(root.rglob("*.py")) if root.is_dir() else [root.with_suffix(".py")]:
        bad = ctharmony_imports(path) & FORBIDDEN[package]
        if bad:
            violations.append(f"{path.relative_to(PACKAGE)} imports {sorted(bad)}")
    assert not violations, "\n".join(violations)


def test_every_package_and_module_has_a_rule():
    found = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    found |= {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert found == set(FORBIDDEN), f"no layering rule for {sorted(found - set(FORBIDDEN))}"


def test_nothing_imports_the_cli():
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                 if p.relative_to(PACKAGE).parts[0] != "cli" and "cli" in ctharmony_imports(p)]
    assert not offenders
