"""An interrupted sweep (Ctrl-C, i.e. SIGINT to the driver) resumes without rerunning finished trials."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
from ray import cloudpickle, tune

from ctharmony.train.sweep.space import SweepSpace
from ctharmony.train.sweep.tracking import child_runs
from ctharmony.train.sweep.tuning import SweepError, run_sweep

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import test modules


def recording_trainable(log_path: str):
    """A synthetic trainable that appends ``start <λ1>`` to ``log_path`` each time a trial (re)starts."""

    def trainable(config: dict) -> None:
        import time

        from ray import tune

        l1 = config["loss.l1"]
        with open(log_path, "a") as log:
            log.write(f"start {l1}\n")
        for epoch in (1, 2):
            time.sleep(0.1)
            tune.report({"epoch": epoch, "val/dice_worst": 0.5 + l1 / 100 + epoch / 100, "val/mae_hu": 20.0 - l1})

    return trainable


class CtrlCAfter(tune.Callback):
    """Sends SIGINT to the sweep's driver (this process) once ``after`` trials have completed.

    One-shot: armed by the file ``armed`` and disarms itself, so the restored sweep is not interrupted.
    """

    def __init__(self, after: int, armed: Path) -> None:
        self.after, self.armed, self.completed = after, armed, 0

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.completed += 1
        if self.completed >= self.after and self.armed.exists():
            self.armed.unlink()
            os.kill(os.getpid(), signal.SIGINT)


def lines(path: Path, word: str) -> list[float]:
    return [float(line.split()[1]) for line in path.read_text(encoding="utf-8").splitlines() if line.startswith(word)]


def test_interrupted_sweep_resumes_and_keeps_finished_trials(ray_local, tmp_path):
    log_path, armed = tmp_path / "runs.log", tmp_path / "armed"
    armed.touch()
    space = SweepSpace.from_dict({"params": {"loss.l1": {"grid": [1.0, 2.0, 3.0, 4.0]}}})
    trainable = recording_trainable(str(log_path))
    common = dict(name="resumable", trials=1, max_epochs=2, max_concurrent=2, storage_path=tmp_path)

    first = run_sweep(trainable, space, extra_callbacks=[CtrlCAfter(2, armed)], **common)
    assert not first.complete and first.best is None  # interrupted: no selection on a partial sweep
    finished_before = {o.params["loss.l1"] for o in first.outcomes if o.status == "TERMINATED"}
    assert len(finished_before) >= 2 and len(finished_before) < 4
    assert finished_before <= set(lines(log_path, "start"))

    with pytest.raises(SweepError, match="already exists"):
        run_sweep(trainable, space, **common)  # a new sweep never silently overwrites an old one

    second = run_sweep(trainable, space, resume=True, **common)
    assert second.complete and len(second.outcomes) == 4
    assert all(o.status == "TERMINATED" for o in second.outcomes)
    starts = lines(log_path, "start")
    for l1 in finished_before:
        assert starts.count(l1) == 1, f"finished trial λ1={l1} was rerun"
    assert sorted(set(starts)) == [1.0, 2.0, 3.0, 4.0]
    assert second.best.params == {"loss.l1": 4.0}
    # The resumed sweep kept writing into the same parent run: one child per trial, no duplicates.
    assert second.parent_run_id == first.parent_run_id
    children = child_runs(second.parent_run_id)
    assert sorted(float(r.data.params["loss.l1"]) for r in children) == [1.0, 2.0, 3.0, 4.0]
    assert {r.info.status for r in children} == {"FINISHED"}
