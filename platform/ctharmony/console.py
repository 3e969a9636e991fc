"""What a long command shows on the terminal: a line per stage and its result; everything else in a log file.

:func:`captured_output` sends the process's standard output and error to a log file at the
file-descriptor level, so that Ray's and MLflow's logs, warnings, native libraries' messages and the
child processes' output (a local Ray head, ``ray job submit``) all land there, and keeps a private copy
of the terminal for the :class:`Console`. With ``verbose`` nothing is redirected: the detail is shown
live (and logged to the file as well).

On a terminal the console keeps one live line under the stage lines (elapsed time, or the last progress
message a stage sent with :func:`status`); elsewhere (a pipe, CI) it writes the permanent lines only.

Example:
    >>> import io
    >>> console = Console(io.StringIO())
    >>> console.say("catalog: 12 series")
    >>> console.stream.getvalue()
    'catalog: 12 series\\n'
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_ACTIVE: list[Console] = []


class Console:
    """Permanent lines (:meth:`say`) and, on a terminal, one live status line (:meth:`status`)."""

    def __init__(self, stream: IO[str], *, live: bool | None = None) -> None:
        self.stream = stream
        self.live = stream.isatty() if live is None else live
        self._status = ""
        self._stage = ""
        self._since = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def say(self, text: str) -> None:
        """Write ``text`` as permanent line(s), above the live line."""
        with self._lock:
            self._clear()
            self.stream.write(text + "\n")
            self._draw()
            self.stream.flush()

    def status(self, text: str) -> None:
        """Replace the live line (shown on a terminal only), after the current stage's label."""
        with self._lock:
            self._status = text
            self._draw()
            self.stream.flush()

    def stage(self, label: str) -> None:
        """Start the live line of a stage: its label, then its elapsed time and latest status."""
        with self._lock:
            self._stage, self._status, self._since = label, "", time.monotonic()
            self._draw()
            self.stream.flush()

    def start_ticker(self, interval_s: float = 1.0) -> None:
        """Redraw the live line every ``interval_s`` so that its elapsed time moves while a stage works."""
        if not self.live or self._ticker is not None:
            return

        def tick() -> None:
            while not self._stop.wait(interval_s):
                with self._lock:
                    self._draw()
                    self.stream.flush()

        self._ticker = threading.Thread(target=tick, name="ctharmony-console", daemon=True)
        self._ticker.start()

    def close(self) -> None:
        """Stop the ticker and clear the live line."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2.0)
        with self._lock:
            self._stage = self._status = ""
            self._clear()
            self.stream.flush()

    def _clear(self) -> None:
        if self.live:
            self.stream.write("\r\033[K")

    def _draw(self) -> None:
        if not self.live or not self._stage:
            return
        width = shutil.get_terminal_size((100, 20)).columns - 1
        line = f"{self._stage} {time.monotonic() - self._since:4.0f} s  {self._status}"
        self.stream.write("\r\033[K" + line[:width])


def active() -> Console | None:
    """The console of the innermost :func:`captured_output`, if any."""
    return _ACTIVE[-1] if _ACTIVE else None


class _StatusHandler(logging.Handler):
    """Shows ctharmony's own INFO messages (epochs, progress) on the console's live line."""

    def __init__(self, console: Console) -> None:
        super().__init__(logging.INFO)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("ctharmony") and record.name != "ctharmony.stages":
            self.console.status(record.getMessage().splitlines()[0] if record.getMessage() else "")


def status(text: str) -> None:
    """Show ``text`` on the active console's live line (a no-op when no console is active)."""
    if _ACTIVE:
        _ACTIVE[-1].status(text)


@contextlib.contextmanager
def captured_output(log_file: Path, *, verbose: bool = False) -> Iterator[Console]:
    """Send this process's stdout / stderr (and its children's) to ``log_file``; yield the terminal's console.

    Python warnings and INFO logs go to the file too. ``verbose`` keeps the streams on the terminal and
    still appends the logs to the file.
    """
    log_file = Path(log_file)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    file_handler = logging.FileHandler(log_file, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter(LOG_FORMAT, "%H:%M:%S"))
    logging.captureWarnings(True)
    if verbose:
        root.addHandler(file_handler)
        console = Console(sys.stdout)
        _ACTIVE.append(console)
        try:
            yield console
        finally:
            _ACTIVE.remove(console)
            root.removeHandler(file_handler)
            file_handler.close()
            logging.captureWarnings(False)
        return
    file_handler.close()  # quiet: the file receives the redirected streams, which the root handler writes to
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    terminal = os.fdopen(os.dup(saved[0]), "w", buffering=1, encoding="utf-8", errors="replace")
    console = Console(terminal)
    _ACTIVE.append(console)
    handlers = root.handlers[:]
    level = root.level
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        stream_handler = logging.StreamHandler(sys.stderr)
        stream_handler.setFormatter(logging.Formatter(LOG_FORMAT, "%H:%M:%S"))
        root.handlers = [stream_handler, _StatusHandler(console)]
        root.setLevel(min(level, logging.INFO) if level else logging.INFO)
        with warnings.catch_warnings():
            warnings.simplefilter("default")  # each warning once per place, into the file
            console.start_ticker()
            yield console
    finally:
        console.close()
        _ACTIVE.remove(console)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for handle in (*saved, fd):
            os.close(handle)
        terminal.close()
        root.handlers = handlers
        root.setLevel(level)
        logging.captureWarnings(False)
