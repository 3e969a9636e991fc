"""Progress while a conversion runs (series done / total, throughput, ETA) and a summary at the end.

Lines go through :mod:`logging` (logger ``ctharmony.infer``), so ``ray job logs`` shows them. A line
is logged at most every ``interval_s`` seconds, and always for the last series.

Example:
    >>> progress = ConversionProgress(total=2, skipped=0, interval_s=0)
    >>> progress.update({"status": "done", "slices": 8})
    >>> progress.done, progress.slices
    (1, 8)
"""

from __future__ import annotations

import collections
import logging
import time
from typing import Any

log = logging.getLogger("ctharmony.infer")

STAGES = ("seconds_read", "seconds_harmonize", "seconds_segment", "seconds_write")


class ConversionProgress:
    """Counts results rows as they arrive and reports rates."""

    def __init__(self, total: int, skipped: int = 0, interval_s: float = 5.0) -> None:
        self.total = total
        self.skipped = skipped
        self.interval_s = interval_s
        self.done = 0
        self.failed = 0
        self.slices = 0
        self.stage_seconds: dict[str, float] = collections.defaultdict(float)
        self.reasons: collections.Counter[str] = collections.Counter()
        self.nodes: collections.Counter[str] = collections.Counter()
        self.started = time.monotonic()
        self._last_line = 0.0

    @property
    def finished(self) -> int:
        return self.done + self.failed

    @property
    def elapsed_s(self) -> float:
        return max(time.monotonic() - self.started, 1e-9)

    def update(self, record: dict[str, Any]) -> None:
        """Account for one results row and log a progress line when due."""
        if record.get("status") == "done":
            self.done += 1
            self.slices += int(record.get("slices") or 0)
        else:
            self.failed += 1
            self.reasons[str(record.get("reason", "")).split(":")[0] or "unknown"] += 1
        for stage in STAGES:
            self.stage_seconds[stage] += float(record.get(stage) or 0.0)
        if record.get("node_id"):
            self.nodes[str(record["node_id"])] += 1
        now = time.monotonic()
        if self.finished >= self.total or now - self._last_line >= self.interval_s:
            self._last_line = now
            log.info("%s", self.line())

    def line(self) -> str:
        """``progress: 3/12 series (done 3, failed 0), 24 slices, 4.1 slices/s, 0.5 series/s, ETA 18 s``."""
        rate = self.finished / self.elapsed_s
        eta = (self.total - self.finished) / rate if rate > 0 else float("nan")
        return (
            f"progress: {self.finished}/{self.total} series (done {self.done}, failed {self.failed}), "
            f"{self.slices} slices, {self.slices / self.elapsed_s:.1f} slices/s, "
            f"{rate:.2f} series/s, ETA {eta:.0f} s"
        )

    def summary(self) -> str:
        """The end-of-run summary (also logged)."""
        stages = ", ".join(
            f"{stage.removeprefix('seconds_')} {self.stage_seconds[stage] / max(self.finished, 1):.2f}"
            for stage in STAGES
        )
        parts = [
            f"summary: {self.done} series converted, {self.failed} failed, {self.skipped} already done "
            f"(not redone); {self.slices} slices in {self.elapsed_s:.1f} s "
            f"({self.slices / self.elapsed_s:.1f} slices/s)",
            f"mean seconds per series: {stages}",
        ]
        if self.nodes:
            parts.append(f"series per node: {dict(sorted(self.nodes.items()))}")
        if self.reasons:
            parts.append(f"failures by stage: {dict(self.reasons)}")
        text = "; ".join(parts)
        log.info("%s", text)
        return text
