"""Every example shown to a user runs: README, docs/, ``--help``, job scripts, spec headers, model cards, docstrings.

A command-line example is parsed by the real CLI (click's parser: unknown options, wrong types and
missing arguments fail), its placeholders (``C``, ``MODEL``, ``N``) filled by the option's type, and its
spec with its ``--set`` overrides loaded for real, so an example naming a key no spec has fails here.
Docstring examples run under ``pytest --doctest-modules platform/ctharmony`` (``make test``); none may
be marked SKIP.
"""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ctharmony.cli import app
from ctharmony.infer.job_code import JOB_COMMANDS, job_script_text
from ctharmony.models.registry import load_spec, specs_dir

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "platform" / "ctharmony"
GROUP = typer.main.get_command(app)
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*(\.yaml)?$")


def _join_continuations(text: str) -> list[str]:
    return [line.strip() for line in re.sub(r"\\\n\s*", " ", text).splitlines()]


def _cli_line(line: str) -> str | None:
    """The part of ``line`` that is a ctharmony command line (``ctharmony X ...``, a job script, a local head)."""
    line = line.split("  #", 1)[0].strip().strip("`")
    for marker, command in (("python -m ctharmony.infer.local_head -- ", "convert"),):
        if marker in line:
            return f"{command} {line.split(marker, 1)[1]}"
    match = re.search(r"python (?:jobs/)?(\w+\.py)(.*)$", line)
    if match and match.group(1) in JOB_COMMANDS:
        return f"{JOB_COMMANDS[match.group(1)]}{match.group(2)}"
    match = re.match(r"^ctharmony (\S+)( .*)$", line)  # a bare `ctharmony X` is a mention, not an example
    if match and match.group(1) in GROUP.commands:
        return f"{match.group(1)}{match.group(2)}"
    return None


def _examples() -> list[tuple[str, str]]:
    """(where, command line) of every command-line example in the docs the user reads."""
    found: list[tuple[str, str]] = []
    sources = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "models").glob("*.md")),
               *sorted((REPO / "jobs").glob("*.py")),
               *sorted(specs_dir().glob("*.yaml"))]
    for path in sources:
        text = path.read_text(encoding="utf-8")
        candidates = re.findall(r"`(ctharmony [^`]+|python [^`]+)`", text)
        blocks = re.findall(r"```\w*\n(.*?)```", text, re.S) if path.suffix == ".md" else [text]
        candidates += [line.lstrip("# ") for block in blocks for line in _join_continuations(block)]
        for candidate in dict.fromkeys(candidates):
            line = _cli_line(candidate)
            if line is not None:
                found.append((path.relative_to(REPO).as_posix(), line))
    return found


EXAMPLES = _examples()


def _is_number(param) -> bool:
    return getattr(param, "type_descriptor", None) is not None and param.type_descriptor.annotation in (int, float)


def _fill(command, tokens: list[str]) -> list[str]:
    """Placeholders replaced by a value of the option's type; ``[``, ``]``, ``...`` and ``a|b`` resolved."""
    options = {name: p for p in command.params for name in p.opts}
    out: list[str] = []
    for token in tokens:
        token = token.strip("[]").replace("\\|", "|")
        if not token or token == "...":
            continue
        if "|" in token and not token.startswith("-"):
            token = token.split("|", 1)[0]
        param = options.get(out[-1]) if out else None
        if PLACEHOLDER.match(token) or "=VALUE" in token:
            if token == "KEY=VALUE":
                token = "train.seed=1"
            elif param is not None and _is_number(param):
                token = "2"
            else:
                token = "placeholder"
        out.append(token)
    return out


@pytest.mark.parametrize(("where", "line"), EXAMPLES, ids=[f"{w}:{ln.split()[0]}" for w, ln in EXAMPLES])
def test_documented_command_lines_parse_and_their_specs_load(where, line):
    name, *tokens = shlex.split(line.replace("\\|", "|"))
    command = GROUP.commands[name]
    args = _fill(command, tokens)
    try:
        ctx = command.make_context(name, list(args))
    except typer.exceptions.TyperException as err:
        pytest.fail(f"{where}: `{line}` does not parse: {err}")
    params = ctx.params
    spec = params.get("spec")
    if spec and spec != "placeholder":
        load_spec(spec, params.get("overrides") or [])  # a wrong key or spec name fails here
    if name == "convert":
        from ctharmony.infer.policy import Policies

        Policies(on_tilt=params["on_tilt"], on_gap=params["on_gap"], on_unknown=params["on_unknown"])


def test_the_examples_cover_every_documented_command():
    documented = {line.split()[0] for _, line in EXAMPLES}
    commands = {"phantom", "catalog", "train-segmenter", "train", "sweep", "convert", "evaluate", "demo", "ui"}
    assert commands <= documented
    assert any("--set" in line for _, line in EXAMPLES)


def _help_texts() -> list[tuple[str, str, str]]:
    return [(name, param.name or "", param.help or "") for name, command in GROUP.commands.items()
            for param in command.params if isinstance(param, typer.core.TyperOption)]


def test_every_help_example_runs():
    """``e.g. --set k=v`` applies to the command's default spec; every model URI shown is a valid reference."""
    from ctharmony.infer.model_source import resolve_model_source
    from ctharmony.tracking.models import REGISTERED

    seen = 0
    for name, param, text in _help_texts():
        command = GROUP.commands[name]
        for key_value in re.findall(r"--set (\S+=[^\s.,)]+)", text):
            spec = next(p.default for p in command.params if p.name == "spec")
            assert load_spec(spec, [key_value]), (name, param, key_value)
            seen += 1
        for uri in re.findall(r"models:/[\w@/-]+", text):
            if "name@alias" in uri:
                continue  # the pattern itself, not an example
            assert resolve_model_source(uri).is_mlflow
            assert uri[len("models:/"):].split("@")[0].split("/")[0] in REGISTERED.values(), (name, param, uri)
            seen += 1
    assert seen >= 4


@pytest.mark.parametrize("name", sorted(GROUP.commands))
def test_every_command_help_answers(name):
    result = CliRunner().invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


@pytest.mark.parametrize("script", sorted(JOB_COMMANDS))
def test_job_scripts_are_all_the_same_thin_forwarder(script):
    """Each jobs/*.py: a docstring with its `ray job submit` line, then exactly the code job_code writes."""
    source = (REPO / "jobs" / script).read_text(encoding="utf-8")
    tree, written = ast.parse(source), ast.parse(job_script_text(script))
    docstring = ast.get_docstring(tree) or ""
    assert "ray job submit" in docstring and f"python {script}" in docstring
    body = [ast.dump(node) for node in tree.body[1:] if not isinstance(node, ast.ImportFrom)
            or node.module != "__future__"]
    assert body == [ast.dump(node) for node in written.body[1:]]


def test_no_job_script_is_missing_from_the_registry():
    assert sorted(p.name for p in (REPO / "jobs").glob("*.py")) == sorted(JOB_COMMANDS)


def test_no_docstring_example_is_marked_skip():
    marked = [f"{path.relative_to(PACKAGE)}:{number}" for path in sorted(PACKAGE.rglob("*.py"))
              for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
              if "doctest: +SKIP" in line]
    assert not marked, "examples that pretend to be tested (run them, or make them `Example::` blocks): " + \
        ", ".join(marked)


def test_no_comment_points_outside_the_repository():
    outside = [f"{path.relative_to(REPO)}:{number}" for path in sorted(PACKAGE.rglob("*.py"))
               for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
               if re.search(r"(?<!\.)\.\./|\bshared/", line)]
    assert not outside, outside


@pytest.mark.slow
def test_the_readme_plan_example_runs(tmp_path):
    """``python jobs/convert_archive.py --plan`` (README, GPU clusters) prints the plan as JSON."""
    import json

    result = subprocess.run([sys.executable, str(REPO / "jobs" / "convert_archive.py"), "--plan"],
                            capture_output=True,
                            encoding="utf-8", errors="replace", timeout=300, cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    plan = json.loads(result.stdout[result.stdout.index("{"):])
    assert "read_write_tasks" in plan


def test_readme_is_a_short_guide_whose_links_resolve():
    """README stays a guide (at most 150 lines); every relative link in README and docs/ names a file that exists."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    assert "make demo" in readme and "make test" in readme
    broken = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text(encoding="utf-8")):
            if not target.startswith(("http://", "https://")) and not (path.parent / target).exists():
                broken.append(f"{path.relative_to(REPO)} -> {target}")
    assert not broken, broken


def test_no_document_points_at_files_outside_the_repository():
    """Users' clones hold no sibling shared folder nor PAPER.md: the paper is docs/paper.md, the cases data/real."""
    texts = [REPO / "README.md", REPO / "Makefile", *sorted((REPO / "docs").glob("*.md")),
             *sorted((REPO / "models").glob("*.md")), *sorted((REPO / "tests").rglob("*.py"))]
    offending = [str(p.relative_to(REPO)) for p in texts
                 if re.search(r"\.\./(?:shared)|\bPAPER\.md|issue #\d+", p.read_text(encoding="utf-8"))
                 and p.name != "test_help_examples.py"]
    assert not offending, offending
