"""A minimal progress display on stderr: a live line on a terminal, periodic log lines otherwise.

Example:
    >>> with Progress(100, "headers", enabled=False) as bar:
    ...     bar.advance(40)
    >>> bar.done
    40
"""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger(__name__)


class Progress:
    """Counts items done out of ``total`` and shows the rate."""

    def __init__(self, total: int, what: str, *, enabled: bool = True, every_s: float = 2.0) -> None:
        self.total, self.what, self.enabled, self.every_s = total, what, enabled, every_s
        self.done = 0
        self._start = self._last = time.perf_counter()
        self._tty = enabled and sys.stderr.isatty()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._show(final=True)

    def line(self) -> str:
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        pct = 100.0 * self.done / self.total if self.total else 100.0
        return f"{self.what}: {self.done}/{self.total} ({pct:.0f}%), {self.done / elapsed:.0f}/s, {elapsed:.1f} s"

    def advance(self, count: int) -> None:
        self.done += count
        now = time.perf_counter()
        if self.enabled and (self._tty or now - self._last >= self.every_s):
            self._last = now
            self._show()

    def _show(self, final: bool = False) -> None:
        if self._tty:
            sys.stderr.write("\r" + self.line() + ("\n" if final else ""))
            sys.stderr.flush()
        else:
            log.info("%s", self.line())
