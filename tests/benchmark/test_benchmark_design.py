"""The benchmark's plan: a dose-varied training archive and the texture-loss harmonizer."""

from __future__ import annotations

import dataclasses
import json

from ctharmony.benchmark.design import BenchmarkPlan
from ctharmony.benchmark.workflow import simulate_subset
from ctharmony.models.registry import load_spec


def test_the_benchmark_trains_cpu_small_plus_the_texture_loss() -> None:
    texture, small = load_spec(BenchmarkPlan().harmonizer_spec), load_spec("cpu-small")
    assert texture.loss.texture == 1.0 and small.loss.texture == 0.0
    texture.loss.texture, texture.train.epochs_stage2, texture.name = 0.0, small.train.epochs_stage2, small.name
    assert texture == small  # nothing else differs
    assert load_spec(texture, ["loss.texture=0.5"]).loss.texture == 0.5  # --harmonizer-set


def test_training_patients_are_scanned_at_drawn_doses_and_test_phantoms_are_not(tmp_path) -> None:
    plan = BenchmarkPlan(train_patients=4, slices=1, size=48)
    training = plan.training()
    assert training.augment is True and training.name not in {s.name for s in plan.subsets()}
    table = simulate_subset(tmp_path / "train", training, plan, ("M80",))
    doses = [json.loads(p).get("dose_scale") for p in table["params"]]
    assert all(d is not None for d in doses) and len(set(doses)) > 1  # seed 11 draws 0.5, 1.5, 1.5, 1.0
    synthetic = plan.subsets()[0]
    assert synthetic.augment is None  # phantom default: every test patient at the site's own dose
    plain = simulate_subset(tmp_path / "test", dataclasses.replace(synthetic, patients=1), plan, ("M80",))
    assert "dose_scale" not in json.loads(plain["params"].iloc[0])
