"""Model selection: the objective, the results table, and the champion alias (synthetic objective)."""

from __future__ import annotations

import math
import sys

import mlflow
import pytest
from ray import cloudpickle

from ctharmony.train.sweep.select import (
    TAG_FINGERPRINT,
    Score,
    TrialOutcome,
    best_epoch,
    promote_if_better,
    results_table,
    select_best,
    validation_fingerprint,
)
from ctharmony.train.sweep.space import SweepSpace
from ctharmony.train.sweep.tracking import child_runs
from ctharmony.train.sweep.tuning import run_sweep

PROTOCOLS = ("FBP", "IR", "M40", "M60", "OPT")
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import test modules


def synthetic_trainable(config: dict) -> None:
    """Worst-protocol Dice peaks at λ1 = 10 at every epoch (plus a fixed ``bonus``); M40 is the worst."""
    from ray import tune

    distance = abs(math.log10(config["loss.l1"]) - 1.0)
    for epoch in range(1, 4):
        dice = {p: 0.95 - 0.2 * distance - 0.05 * (p == "M40") - 0.1 / epoch for p in PROTOCOLS}
        dice = {p: v + config.get("bonus", 0.0) for p, v in dice.items()}
        mae = {p: 10.0 + 8.0 * distance + 5.0 * (p == "M40") + 4.0 / epoch for p in PROTOCOLS}
        metrics = {"epoch": epoch, "val/dice_worst": min(dice.values()), "val/mae_hu": sum(mae.values()) / 5}
        metrics.update({f"val/mae_hu/{p}": v for p, v in mae.items()})
        metrics.update({f"val/dice/{p}": v for p, v in dice.items()})
        tune.report(metrics)


def register_parent_artifact(model_name: str):
    """A register function: a model version whose source is a small artifact of the parent run."""

    def register(best: TrialOutcome, parent_run_id: str) -> tuple[str, str]:
        client = mlflow.MlflowClient()
        client.log_dict(parent_run_id, {"trial": best.trial_id, **best.params}, "model/params.json")
        if not client.search_registered_models(f"name = '{model_name}'"):
            client.create_registered_model(model_name)
        source = f"{client.get_run(parent_run_id).info.artifact_uri}/model"
        return model_name, str(client.create_model_version(model_name, source, run_id=parent_run_id).version)

    return register


def test_score_order_and_tie_break():
    better_dice = Score(0.92, 30.0)
    assert better_dice.beats(Score(0.90, 5.0))  # Dice first: MAE cannot buy a worse worst-case Dice
    assert Score(0.9005, 8.0).beats(Score(0.9000, 9.0))  # tied Dice -> lower MAE wins
    assert not Score(0.9005, 9.5).beats(Score(0.9000, 9.0))
    assert not Score(0.9, 9.0).beats(Score(0.9, 9.0))  # equal is not an improvement
    assert Score.from_metrics({"val/dice_worst": float("nan"), "val/mae_hu": 1.0}) is None
    history = [{"val/dice_worst": 0.5, "val/mae_hu": 9.0}, {"val/dice_worst": 0.8, "val/mae_hu": 20.0}]
    assert best_epoch(history)["val/dice_worst"] == 0.8
    outcomes = [
        TrialOutcome("a", {"loss.l1": 3.0}, Score(0.80, 10.0), {"val/mae_hu/M40": 14.0}),
        TrialOutcome("b", {"loss.l1": 10.0}, Score(0.85, 12.0), {"val/mae_hu/M40": 16.0}),
        TrialOutcome("c", {"loss.l1": 30.0}, None, {}, status="ERROR"),
    ]
    assert select_best(outcomes).trial_id == "b"
    table = results_table(outcomes)
    assert list(table["trial"]) == ["b", "a", "c"]
    assert {"loss.l1", "val/dice_worst", "val/mae_hu", "val/mae_hu/M40", "status"} <= set(table.columns)


def test_fingerprint_depends_on_validation_set_and_segmenter():
    base = validation_fingerprint(["s2", "s1"], segmenter="models:/liver/1")
    assert base == validation_fingerprint(["s1", "s2"], segmenter="models:/liver/1")
    assert base != validation_fingerprint(["s1", "s3"], segmenter="models:/liver/1")
    assert base != validation_fingerprint(["s1", "s2"], segmenter="models:/liver/2")


def test_synthetic_sweep_selects_known_best_and_alias_moves_only_on_improvement(ray_local, tmp_path):
    name = "synthetic-harmonizer"
    register = register_parent_artifact(name)
    fingerprint = validation_fingerprint(["v1", "v2"], segmenter="synthetic")
    common = dict(max_epochs=3, grace_period=1, max_concurrent=2, storage_path=tmp_path,
                  fingerprint=fingerprint, register=register)  # fmt: skip

    # Sweep 1: λ1 in {1, 10, 100}; the synthetic objective peaks at 10 -> that trial wins, and it becomes
    # the first champion.
    space = SweepSpace.from_dict({"params": {"loss.l1": {"grid": [1.0, 10.0, 100.0]}, "loss.gan": 1.0}})
    first = run_sweep(synthetic_trainable, space, name="s1", trials=1, **common)
    assert first.complete and len(first.outcomes) == 3
    assert first.best.params == {"loss.l1": 10.0, "loss.gan": 1.0}
    assert first.best.score.dice_worst == pytest.approx(0.95 - 0.05 - 0.1 / 3)
    assert first.decision.promoted and first.decision.previous_version is None
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias(name, "champion").version) == first.decision.version
    children = child_runs(first.parent_run_id)
    assert sorted(float(r.data.params["loss.l1"]) for r in children) == [1.0, 10.0, 100.0]
    history = client.get_metric_history(children[0].info.run_id, "val/dice_worst")
    assert len(history) >= 1 and all(m.step >= 1 for m in history)
    table = mlflow.artifacts.load_text(f"runs:/{first.parent_run_id}/sweep_results.txt")
    assert "val/mae_hu/M40" in table and "val/dice_worst" in table

    # Sweep 2: only worse λ1 -> a new version is registered and tagged, the alias stays.
    worse = SweepSpace.from_dict({"params": {"loss.l1": {"grid": [1.0, 100.0]}}})
    second = run_sweep(synthetic_trainable, worse, name="s2", trials=1, **common)
    assert second.best.params["loss.l1"] in (1.0, 100.0)
    assert not second.decision.promoted and second.decision.previous_version == first.decision.version
    assert str(client.get_model_version_by_alias(name, "champion").version) == first.decision.version
    assert client.get_model_version(name, second.decision.version).tags[TAG_FINGERPRINT] == fingerprint

    # Resuming a finished sweep reports it again but never registers its best twice.
    versions = len(client.search_model_versions(f"name = '{name}'"))
    again = run_sweep(synthetic_trainable, space, name="s1", trials=1, resume=True, **common)
    assert again.best.trial_id == first.best.trial_id and again.decision == first.decision
    assert len(client.search_model_versions(f"name = '{name}'")) == versions

    # A better score on ANOTHER validation set is not comparable: the champion is kept...
    other = validation_fingerprint(["v9"], segmenter="synthetic")
    register_other = register(first.best, first.parent_run_id)[1]
    kept = promote_if_better(client, name, register_other, Score(0.99, 1.0), other)
    assert not kept.promoted and "another validation set" in kept.reason
    # ...unless the champion is re-scored on that set, and then only a real improvement moves it.
    moved = promote_if_better(client, name, register_other, Score(0.99, 1.0), other,
                              evaluate_champion=lambda uri: Score(0.5, 50.0))  # fmt: skip
    assert moved.promoted
    assert str(client.get_model_version_by_alias(name, "champion").version) == register_other
