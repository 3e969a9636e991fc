"""Submit a conversion with ``ray job submit`` to a local Ray head started (and stopped) here.

This is the path users take on a real cluster, run on one machine: a head whose every port binds
127.0.0.1 (Ray's local-only mode, see :mod:`ctharmony.cluster`; token authentication ON: the job CLI
gets ``RAY_AUTH_MODE=token`` and reads ``~/.ray/auth_token``), then a job that uploads code only
(:mod:`ctharmony.infer.job_code`: the script and the package, never the data beside them)::

    ray job submit --address http://127.0.0.1:<port> --working-dir <staged>/work \
        --runtime-env-json '{"py_modules": ["<staged>/ctharmony"]}' -- python convert_archive.py ...

whose logs stream to this terminal. The head runs under ``ray start --block`` in its own process
group with its own temp dir and free ports; :meth:`LocalHead.stop` ends exactly that group, never
another Ray on the machine (no ``ray stop``).

Example:
    $ python -m ctharmony.infer.local_head --num-cpus 2 -- \
        --catalog C --harmonizer H --segmenter S --out OUT
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from ctharmony import console
from ctharmony.cluster import START_ENV
from ctharmony.infer.job_code import StagedJob, stage_job_code
from ctharmony.net import free_port

log = logging.getLogger("ctharmony.infer")

JOB_SCRIPT = "convert_archive.py"  # in jobs/


def ray_executable() -> str:
    """The ``ray`` CLI next to this interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "ray"
    return str(beside) if beside.exists() else (shutil.which("ray") or "ray")


def job_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for the head and the job CLI: token auth, loopback only, this interpreter first on PATH."""
    env = dict(os.environ)
    env.update(START_ENV)
    env["RAY_AUTH_MODE"] = "token"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("RAY_ADDRESS", None)
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env.update(extra or {})
    return env


@dataclasses.dataclass
class LocalHead:
    """A ``ray start --head --block`` process group this module started."""

    process: subprocess.Popen
    dashboard_url: str
    gcs_address: str
    temp_dir: Path

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop this head and everything it started (its own process group only, never ``ray stop``).

        SIGINT makes ``ray start --block`` shut its processes down gracefully (SIGTERM does not);
        whatever is left of the group afterwards gets SIGTERM, then SIGKILL.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            time.sleep(2.0)
        if self.process.poll() is None:  # pragma: no cover - SIGKILL was sent
            self.process.wait(timeout=10)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def start_local_head(num_cpus: int = 2, *, env: dict[str, str] | None = None, timeout_s: float = 90.0) -> LocalHead:
    """Start a Ray head on 127.0.0.1 with the dashboard / job server; returns when jobs can be submitted."""
    temp_dir = Path(tempfile.mkdtemp(prefix="rayct-", dir="/tmp"))  # short: Ray's socket paths are limited
    ports = {name: free_port() for name in ("port", "dashboard", "client", "agent", "metrics")}
    args = [
        ray_executable(), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
        "--port", str(ports["port"]), "--dashboard-host", "127.0.0.1", "--include-dashboard=true",
        "--dashboard-port", str(ports["dashboard"]), "--ray-client-server-port", str(ports["client"]),
        "--dashboard-agent-listen-port", str(ports["agent"]), "--metrics-export-port", str(ports["metrics"]),
        "--num-cpus", str(num_cpus), "--num-gpus", "0", "--disable-usage-stats", "--temp-dir", str(temp_dir),
    ]
    log_path = temp_dir / "ray-start.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, env=job_environment(env),
                                   start_new_session=True)
    head = LocalHead(process, f"http://127.0.0.1:{ports['dashboard']}", f"127.0.0.1:{ports['port']}", temp_dir)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            text = log_path.read_text(errors="replace")[-2000:]
            head.stop()
            raise RuntimeError(f"ray start --head exited with {process.returncode}:\n{text}")
        if _jobs_api_ready(head, env):
            log.info("local Ray head up: dashboard %s, GCS %s", head.dashboard_url, head.gcs_address)
            return head
        time.sleep(1.0)
    head.stop()
    raise TimeoutError(f"the local Ray head did not accept jobs within {timeout_s:.0f} s (log: {log_path})")


def _jobs_api_ready(head: LocalHead, env: dict[str, str] | None) -> bool:
    result = subprocess.run([ray_executable(), "job", "list", "--address", head.dashboard_url],
                            capture_output=True, env=job_environment(env), timeout=60, check=False)
    return result.returncode == 0


PATH_OPTIONS = ("--catalog", "--out", "--harmonizer", "--segmenter")
NO_AGENT = "No available agent to submit job"  # Ray's answer before the head's job agent has registered
SUBMIT_ATTEMPTS = 5
AGENT_WAIT_S = 3.0


def absolute_job_args(job_args: Sequence[str]) -> list[str]:
    """Make path arguments absolute: the job runs in its uploaded working dir, not here."""
    from ctharmony.infer.model_source import MLFLOW_SCHEMES

    out = list(job_args)
    for i, arg in enumerate(out[:-1]):
        value = out[i + 1]
        if arg in PATH_OPTIONS and not value.startswith(MLFLOW_SCHEMES) and not os.path.isabs(value):
            out[i + 1] = os.path.abspath(value)
    return out


def submit_command(dashboard_url: str, job_args: Sequence[str], staged: StagedJob) -> list[str]:
    """The ``ray job submit`` command line for a staged, code-only job (path arguments made absolute)."""
    runtime_env = json.dumps({"py_modules": [str(staged.package)]})
    return [ray_executable(), "job", "submit", "--address", dashboard_url, "--working-dir", str(staged.working_dir),
            "--runtime-env-json", runtime_env, "--", "python", staged.script, *absolute_job_args(job_args)]


def submit_and_stream(head: LocalHead, job_args: Sequence[str], *, script: str = JOB_SCRIPT,
                      env: dict[str, str] | None = None, timeout_s: float | None = None,
                      echo: bool = True) -> tuple[int, str]:
    """Submit ``jobs/<script>`` with code only and stream its logs (to stdout when ``echo``) until it ends.

    Returns the CLI's exit code (the job's success) and the log text.
    """
    with tempfile.TemporaryDirectory(prefix="ctharmony-job-") as tmp:
        staged = stage_job_code(tmp, script)
        command = submit_command(head.dashboard_url, job_args, staged)
        for attempt in range(1, SUBMIT_ATTEMPTS + 1):
            code, logs = _stream(command, staged.working_dir, env, timeout_s, echo)
            if code == 0 or NO_AGENT not in logs or attempt == SUBMIT_ATTEMPTS:
                return code, logs
            # The job server answers before the head's job agent has registered (slow on a loaded machine):
            # the job was never started, so submitting again is safe.
            log.warning("the head's job agent is not up yet (attempt %d of %d): submitting again", attempt,
                        SUBMIT_ATTEMPTS)
            time.sleep(AGENT_WAIT_S * attempt)
    return code, logs


def _stream(command: list[str], cwd: Path, env: dict[str, str] | None, timeout_s: float | None,
            echo: bool) -> tuple[int, str]:
    log.info("submitting: %s", " ".join(command))
    lines: list[str] = []
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    with subprocess.Popen(command, cwd=cwd, env=job_environment(env), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, encoding="utf-8", errors="replace") as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if echo:
                sys.stdout.write(line)
                sys.stdout.flush()
            if "progress:" in line:  # the job's progress lines on the console's live line, if one is active
                console.status("progress:" + line.split("progress:", 1)[1].rstrip())
            if deadline is not None and time.monotonic() > deadline:
                process.kill()
                lines.append(f"[ctharmony] job submit killed after {timeout_s:.0f} s\n")
                break
        code = process.wait()
    return code, "".join(lines)


def run_job_on_local_head(job_args: Sequence[str], *, num_cpus: int = 2, env: dict[str, str] | None = None,
                          timeout_s: float | None = None) -> int:
    """Start a local head, run the conversion job through ``ray job submit``, stop the head."""
    head = start_local_head(num_cpus=num_cpus, env=env)
    try:
        return submit_and_stream(head, job_args, env=env, timeout_s=timeout_s)[0]
    finally:
        head.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-cpus", type=int, default=2, help="logical CPUs of the local head")
    parser.add_argument("job_args", nargs=argparse.REMAINDER, help="-- then the arguments of convert_archive.py")
    args = parser.parse_args(argv)
    job_args = args.job_args[1:] if args.job_args[:1] == ["--"] else args.job_args
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_job_on_local_head(job_args, num_cpus=args.num_cpus)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
