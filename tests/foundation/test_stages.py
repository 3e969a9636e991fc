"""The stage runner: order, values, timing, the journal, and resuming after a failure."""

from __future__ import annotations

import json

import pytest

from ctharmony.stages import JournalMismatch, Stage, run_stages


def _plan(calls: list[str], fail: str | None = None) -> list[Stage]:
    def step(name: str, value):
        def run(done):
            calls.append(name)
            if name == fail:
                raise RuntimeError(f"{name} broke")
            return value(done)
        return run

    return [
        Stage("archive", step("archive", lambda done: {"studies": {"b", "a"}}),
              keep=lambda raw: sorted(raw["studies"]), resumable=True),
        Stage("model", step("model", lambda done: f"models:/{'-'.join(done['archive'])}"), resumable=True),
        Stage("report", step("report", lambda done: done["model"] + "/report")),
    ]


def test_values_pass_on_in_order_with_keep_and_the_journal_records_them(tmp_path):
    calls: list[str] = []
    journal = tmp_path / "stages.json"
    run = run_stages(_plan(calls), journal=journal, fingerprint={"size": 64})
    assert calls == ["archive", "model", "report"]
    assert run.values == {"archive": ["a", "b"], "model": "models:/a-b", "report": "models:/a-b/report"}
    assert list(run.seconds) == ["archive", "model", "report"] and run.resumed == []
    written = json.loads(journal.read_text())
    assert written["fingerprint"] == {"size": 64}
    assert [(e["name"], e["resumable"], e["value"]) for e in written["stages"]] == [
        ("archive", True, ["a", "b"]), ("model", True, "models:/a-b"), ("report", False, None)]


def test_resume_after_a_failure_runs_only_what_did_not_finish(tmp_path):
    journal = tmp_path / "stages.json"
    calls: list[str] = []
    with pytest.raises(RuntimeError, match="model broke"):
        run_stages(_plan(calls, fail="model"), journal=journal, fingerprint=1)
    assert calls == ["archive", "model"]
    calls.clear()
    run = run_stages(_plan(calls), journal=journal, resume=True, fingerprint=1)
    assert calls == ["model", "report"] and run.resumed == ["archive"]
    assert run.values["report"] == "models:/a-b/report"
    calls.clear()
    run = run_stages(_plan(calls), journal=journal, resume=True, fingerprint=1)
    assert calls == ["report"] and run.resumed == ["archive", "model"]  # a non-resumable stage always runs
    calls.clear()
    run_stages(_plan(calls), journal=journal, fingerprint=1)  # without resume everything runs again
    assert calls == ["archive", "model", "report"]


def test_a_stage_that_runs_again_makes_every_later_stage_run(tmp_path):
    journal = tmp_path / "stages.json"
    run_stages(_plan([]), journal=journal, fingerprint=1)
    calls: list[str] = []
    plan = _plan(calls)
    plan[0] = Stage("archive", plan[0].run, keep=plan[0].keep)  # no longer resumable
    run_stages(plan, journal=journal, resume=True, fingerprint=1)
    assert calls == ["archive", "model", "report"]


def test_a_journal_of_another_plan_or_no_journal_at_all(tmp_path):
    journal = tmp_path / "stages.json"
    run_stages(_plan([]), journal=journal, fingerprint={"size": 64})
    with pytest.raises(JournalMismatch, match="another plan"):
        run_stages(_plan([]), journal=journal, resume=True, fingerprint={"size": 128})
    journal.write_text("not json")
    with pytest.raises(JournalMismatch, match="not a stage journal"):
        run_stages(_plan([]), journal=journal, resume=True, fingerprint={"size": 64})
    calls: list[str] = []
    run_stages(_plan(calls), journal=tmp_path / "absent.json", resume=True, fingerprint=1)
    assert calls == ["archive", "model", "report"]


def test_a_resumable_stage_must_keep_json_and_names_must_be_unique(tmp_path):
    with pytest.raises(TypeError, match="'sets' is resumable"):
        run_stages([Stage("sets", lambda done: {1, 2}, resumable=True)], journal=tmp_path / "j.json")
    with pytest.raises(ValueError, match="unique"):
        run_stages([Stage("a", lambda done: 1), Stage("a", lambda done: 2)])
