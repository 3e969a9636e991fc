"""Long jobs (the demo, the benchmark) as a declared list of named stages: run in order, timed, logged,
resumable.

Each :class:`Stage` receives the values of the stages before it (by name) and returns its own; ``keep``
reduces what it returned to the value later stages get, ``summary`` turns what it returned into the
one-line result shown after the stage's name. A stage is logged as it starts and ends, its seconds are
kept, and the active :mod:`ctharmony.console` shows one line per stage (a live line while it runs, on a
terminal).

With a ``journal`` file, every finished stage's kept value is written to it. ``resume=True`` takes the
leading stages the journal holds back from it instead of running them again (a ``resumable`` stage's
kept value must be JSON: paths as strings, sets as sorted lists), and runs the rest: the first stage that
runs makes every later stage run too, so nothing is taken from a journal whose inputs have changed. A
journal written for another plan (its ``fingerprint``) is refused.

Example:
    >>> plan = [Stage("two", lambda done: 1 + 1), Stage("four", lambda done: done["two"] * 2, str)]
    >>> run = run_stages(plan)
    >>> run.values["four"], sorted(run.seconds)
    (4, ['four', 'two'])
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ctharmony import console

T = TypeVar("T")
log = logging.getLogger("ctharmony.stages")
JOURNAL_VERSION = 1
JOURNAL = "stages.json"  # the journal's name in a job's output folder (demo, benchmark: for --resume)


@dataclasses.dataclass(frozen=True)
class Stage:
    """A named step: ``run(values_so_far)``; ``keep`` makes that the value later stages get (default: as it
    is), ``summary`` its one-line result; ``resumable``: the kept value (JSON) can stand in for running it."""

    name: str
    run: Callable[[Mapping[str, Any]], Any]
    summary: Callable[[Any], str] | None = None
    keep: Callable[[Any], Any] | None = None
    resumable: bool = False


@dataclasses.dataclass
class StageRun:
    """What :func:`run_stages` did: each stage's value and seconds, in order, and which were resumed."""

    values: dict[str, Any]
    seconds: dict[str, float]
    resumed: list[str] = dataclasses.field(default_factory=list)


class JournalMismatch(ValueError):
    """``resume`` found a journal written for another plan."""


def run_stages(stages: Sequence[Stage], logger: logging.Logger | None = None, *, journal: Path | None = None,
               resume: bool = False, fingerprint: Any = None) -> StageRun:
    """Run ``stages`` in order; a failing stage ends the run (its error, with the stage's name, propagates).

    Args:
        journal: a JSON file recording each finished stage (written after every stage).
        resume: take the leading finished stages from ``journal`` instead of running them.
        fingerprint: what the stages were declared from (JSON, e.g. the plan); a journal with another
            fingerprint is refused with :class:`JournalMismatch`.
    """
    names = [stage.name for stage in stages]
    if len(set(names)) != len(names):
        raise ValueError(f"stage names must be unique: {names}")
    logger = logger or log
    fingerprint = json.loads(json.dumps(fingerprint))  # as the journal will hold it
    earlier = _read_journal(journal, fingerprint) if resume and journal is not None else []
    taken = _resumable_prefix(stages, earlier)
    run = StageRun(values={}, seconds={})
    record: list[dict[str, Any]] = []
    shown = console.active()
    for number, stage in enumerate(stages, 1):
        label = f"[{number}/{len(stages)}] {stage.name}"
        if number <= taken:
            entry = earlier[number - 1]
            run.values[stage.name], run.seconds[stage.name] = entry["value"], float(entry["seconds"])
            run.resumed.append(stage.name)
            record.append(entry)
            logger.info("== %s: resumed from %s", stage.name, journal)
            if shown is not None:
                shown.say(f"{label:<34}     - done earlier (resumed)")
            continue
        raw = timed_stage(stage.name, run.seconds, lambda stage=stage: stage.run(run.values), logger, label=label,
                          summary=stage.summary)
        run.values[stage.name] = stage.keep(raw) if stage.keep is not None else raw
        if journal is not None:
            value = _as_json(run.values[stage.name], stage.name) if stage.resumable else None
            record.append({"name": stage.name, "seconds": round(run.seconds[stage.name], 3),
                           "resumable": stage.resumable, "value": value})
            _write_journal(journal, fingerprint, record)
    return run


def _resumable_prefix(stages: Sequence[Stage], earlier: list[dict[str, Any]]) -> int:
    """How many leading stages the journal's entries can stand in for."""
    count = 0
    for stage, entry in zip(stages, earlier, strict=False):
        if not (stage.resumable and entry.get("resumable") and entry.get("name") == stage.name):
            break
        count += 1
    return count


def _as_json(value: Any, name: str) -> Any:
    try:
        return json.loads(json.dumps(value))
    except TypeError as err:
        raise TypeError(f"stage {name!r} is resumable, but its kept value is not JSON: {err}") from err


def _read_journal(journal: Path, fingerprint: Any) -> list[dict[str, Any]]:
    if not journal.is_file():
        return []
    try:
        document = json.loads(journal.read_text(encoding="utf-8"))
        stages = list(document["stages"])
    except (ValueError, KeyError, TypeError) as err:
        raise JournalMismatch(f"{journal}: not a stage journal ({err}); remove it or run without resuming") from err
    if document.get("fingerprint") != fingerprint:
        raise JournalMismatch(f"{journal} was written for another plan; use a new output folder or run "
                              "without resuming")
    return stages


def _write_journal(journal: Path, fingerprint: Any, stages: list[dict[str, Any]]) -> None:
    journal.parent.mkdir(parents=True, exist_ok=True)
    partial = journal.with_name(journal.name + ".partial")
    partial.write_text(json.dumps({"version": JOURNAL_VERSION, "fingerprint": fingerprint, "stages": stages},
                                  indent=1) + "\n", encoding="utf-8")
    partial.replace(journal)  # a crash mid-write leaves the previous journal whole


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
