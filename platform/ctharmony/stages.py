"""Timed stages of a long job (the demo, the benchmark): logged as they start and end, seconds kept.

Example:
    >>> seconds = {}
    >>> timed_stage("add", seconds, lambda: 1 + 1)
    2
    >>> sorted(seconds)
    ['add']
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger("ctharmony.stages")


def timed_stage(name: str, seconds: dict[str, float], fn: Callable[[], T], logger: Any = None) -> T:
    """Run ``fn``, log its start and duration, and record the seconds under ``name``."""
    logger = logger or log
    logger.info("== %s ...", name)
    start = time.perf_counter()
    value = fn()
    seconds[name] = time.perf_counter() - start
    logger.info("== %s done in %.0f s", name, seconds[name])
    return value
