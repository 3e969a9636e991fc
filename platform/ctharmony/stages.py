"""Long jobs (the demo, the benchmark) as a declared list of named stages: run in order, timed, logged.

Each :class:`Stage` receives the values of the stages before it (by name) and returns its own; its
optional ``summary`` turns that value into the one-line result shown after the stage's name. A stage
is logged as it starts and ends, its seconds are kept, and the active :mod:`ctharmony.console` shows one
line per stage (a live line while it runs, on a terminal).

Example:
    >>> plan = [Stage("two", lambda done: 1 + 1), Stage("four", lambda done: done["two"] * 2, str)]
    >>> run = run_stages(plan)
    >>> run.values["four"], sorted(run.seconds)
    (4, ['four', 'two'])
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from ctharmony import console

T = TypeVar("T")
log = logging.getLogger("ctharmony.stages")


@dataclasses.dataclass(frozen=True)
class Stage:
    """A named step: ``run(values_so_far) -> value``; ``summary(value)`` is its one-line result."""

    name: str
    run: Callable[[Mapping[str, Any]], Any]
    summary: Callable[[Any], str] | None = None


@dataclasses.dataclass
class StageRun:
    """What :func:`run_stages` did: each stage's value and seconds, in order."""

    values: dict[str, Any]
    seconds: dict[str, float]


def run_stages(stages: Sequence[Stage], logger: logging.Logger | None = None) -> StageRun:
    """Run ``stages`` in order; a failing stage ends the run (its error, with the stage's name, propagates)."""
    names = [stage.name for stage in stages]
    if len(set(names)) != len(names):
        raise ValueError(f"stage names must be unique: {names}")
    run = StageRun(values={}, seconds={})
    for number, stage in enumerate(stages, 1):
        label = f"[{number}/{len(stages)}] {stage.name}"
        run.values[stage.name] = timed_stage(stage.name, run.seconds, lambda stage=stage: stage.run(run.values),
                                             logger, label=label, summary=stage.summary)
    return run


def timed_stage(name: str, seconds: dict[str, float], fn: Callable[[], T], logger: Any = None, *,
                label: str | None = None, summary: Callable[[T], str] | None = None) -> T:
    """Run ``fn``, log its start and duration, record the seconds under ``name``, show one console line."""
    logger = logger or log
    label = label or name
    shown = console.active()
    logger.info("== %s ...", name)
    if shown is not None:
        shown.stage(label)
    start = time.perf_counter()
    try:
        value = fn()
    except BaseException as err:
        if shown is not None:
            shown.stage("")
            shown.say(f"{label:<34} FAILED after {time.perf_counter() - start:.0f} s: {err}".rstrip())
        raise
    seconds[name] = time.perf_counter() - start
    result = summary(value) if summary is not None else ""
    logger.info("== %s done in %.0f s%s", name, seconds[name], f": {result}" if result else "")
    if shown is not None:
        shown.stage("")
        shown.say(f"{label:<34} {seconds[name]:5.0f} s" + (f"  {result}" if result else ""))
    return value
