"""Quiet terminals: stage lines on screen; everything else (children, native writes, warnings, logs) in the file."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import logging, os, subprocess, sys, warnings
    from pathlib import Path
    from ctharmony.console import captured_output
    from ctharmony.stages import Stage, run_stages

    logging.basicConfig(level=logging.INFO)
    verbose = sys.argv[2] == "verbose"

    def noisy(_):
        print("python print from the job")
        os.write(1, b"native write to fd 1\\n")
        os.write(2, b"native write to fd 2\\n")
        subprocess.run([sys.executable, "-c", "print('child process output')"], check=True)
        warnings.warn("a library nag")
        logging.getLogger("ray.train").info("Reporting training result 1")
        logging.getLogger("ctharmony.train").info("epoch 1/2")
        return 3

    with captured_output(Path(sys.argv[1]), verbose=verbose) as console:
        run = run_stages([Stage("noisy", noisy, lambda n: f"{n} things"), Stage("quiet", lambda done: None)])
        console.say("the table")
    print("after: back on the terminal")
""")
NOISE = ("python print from the job", "native write to fd 1", "native write to fd 2", "child process output",
         "a library nag", "Reporting training result 1", "epoch 1/2")


def _run(tmp_path, mode: str) -> tuple[str, str]:
    log = tmp_path / "run" / "ctharmony.log"
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(log), mode], capture_output=True, text=True,
                          timeout=120, check=True)
    return done.stdout + done.stderr, log.read_text(encoding="utf-8")


def test_quiet_terminal_shows_stage_lines_only_and_the_file_holds_the_rest(tmp_path):
    terminal, log = _run(tmp_path, "quiet")
    lines = terminal.splitlines()
    assert lines[0].startswith("[1/2] noisy") and lines[0].endswith("3 things"), lines
    assert lines[1].startswith("[2/2] quiet") and lines[2:] == ["the table", "after: back on the terminal"], lines
    for text in NOISE:
        assert text not in terminal, text
        assert text in log, text
    assert "== noisy done in" in log  # the stage's own log line


def test_verbose_keeps_the_detail_on_the_terminal_and_logs_to_the_file(tmp_path):
    terminal, log = _run(tmp_path, "verbose")
    for text in ("python print from the job", "native write to fd 1", "child process output", "epoch 1/2"):
        assert text in terminal, text
    assert "epoch 1/2" in log and "== quiet done in" in log
    assert "[1/2] noisy" in terminal
