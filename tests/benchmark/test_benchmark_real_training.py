"""The real-anatomy recipe end to end at the smallest size (the session's benchmark run, ``conftest.py``):
no fold ever trained on its held-out real patient, and each fold converts only that patient's archive."""

from __future__ import annotations

import pandas as pd
import pytest

from ctharmony.archive.catalog import read_catalog
from ctharmony.benchmark.design import REAL, SYNTHETIC, UNSEEN, recipe_cohort
from ctharmony.benchmark.recipe import PREFIX
from ctharmony.benchmark.workflow import ARMS, REAL_ARCHIVE
from ctharmony.simulate.real_cases import origins
from testkit.tiny_benchmark import LABELS, NAMES, PROTOCOLS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


def test_stages_declare_one_pair_per_held_out_case_and_one_on_all(benchmark_run) -> None:
    _, outcome, _, _ = benchmark_run
    per_training = [(label, f"{label}, ") for label in ("",)] + [(label, f"{label}, ") for label in LABELS]
    expected = ["simulate", "catalog", REAL_ARCHIVE, "baselines (fit)"]
    for label, _ in per_training:
        tail = f"{label}, seed 0" if label else "seed 0"
        expected += [f"segmenter ({tail})", f"harmonizer ({tail})",
                     *(f"convert ({arm.method}, {tail})" for arm in ARMS)]
    assert list(outcome.document["seconds"]) == [*expected, "evaluate"]
    models = outcome.document["models"]["0"]
    for label in LABELS:
        assert models[f"segmenter ({label})"].startswith("models:/")
        assert models[f"harmonized ({label})"].startswith("models:/")


def test_the_training_archive_re_simulates_every_case_with_its_own_seed(benchmark_run) -> None:
    out, _, _, journal = benchmark_run
    table = pd.read_parquet(out / "archive-train-real" / "phantom.parquet")
    assert sorted(table["real_case"].unique()) == sorted(NAMES) and table.groupby("real_case").size().eq(2).all()
    assert journal[REAL_ARCHIVE] == origins(table)
    test_studies = {u for name, uids in journal["simulate"].items() for u in uids}
    assert not set(table["study_uid"]) & test_studies  # other UIDs: other simulations than the test archives'


def test_no_fold_trains_on_its_held_out_patient(benchmark_run) -> None:
    out, outcome, calls, journal = benchmark_run
    models = outcome.document["models"]["0"]
    by_model = {c["model"]: c for c in calls["segmenter"]}
    assert by_model[models["segmenter"]]["cases"] == set() and by_model[models["segmenter"]]["originals"] == set()
    every = by_model[models["segmenter (real anatomy, all cases)"]]
    assert every["cases"] == every["originals"] == set(NAMES) and every["excluded"] == set()
    cases_of = journal[REAL_ARCHIVE]  # study UID -> real case
    harmonizers = {c["model"]: c for c in calls["harmonizer"]}
    for held_out in NAMES:
        label = f"real anatomy without {held_out}"
        fold = by_model[models[f"segmenter ({label})"]]
        others = set(NAMES) - {held_out}
        assert fold["cases"] == fold["originals"] == others and fold["excluded"] == {held_out}
        harmonizer = harmonizers[models[f"harmonized ({label})"]]
        studies = set(read_catalog(harmonizer["catalog"]).frame["study_uid"])
        assert {cases_of[s] for s in studies if s in cases_of} == others
        assert len(studies - set(cases_of)) == 2  # and the phantom training patients
        assert f"train.segmenter={models[f'segmenter ({label})']}" in harmonizer["overrides"]
    phantom = harmonizers[models["harmonized"]]
    assert not set(read_catalog(phantom["catalog"]).frame["study_uid"]) & set(cases_of)


def test_each_fold_converts_only_its_held_out_patient_with_its_own_models(benchmark_run) -> None:
    out, outcome, calls, journal = benchmark_run
    models = outcome.document["models"]["0"]
    for held_out in NAMES:
        label = f"real anatomy without {held_out}"
        mine = [c for c in calls["convert"] if c["segmenter"] == models[f"segmenter ({label})"]]
        assert len(mine) == len(ARMS)
        for call in mine:
            assert set(read_catalog(call["catalog"]).frame["study_uid"]) == set(journal["simulate"][f"real-{held_out}"])
            assert (call["target"] / "results.parquet").is_file()
        assert {c["model"] for c in mine} >= {models[f"harmonized ({label})"]}
    shipped = [c for c in calls["convert"] if c["segmenter"] == models["segmenter (real anatomy, all cases)"]]
    assert len(shipped) == len(ARMS)
    expected = set(journal["simulate"][SYNTHETIC]) | set(journal["simulate"][UNSEEN])
    assert all(set(read_catalog(c["catalog"]).frame["study_uid"]) == expected for c in shipped)
    assert len(calls["convert"]) == len(ARMS) * (1 + len(LABELS))


def test_tables_have_both_recipes_on_the_same_exams(benchmark_run) -> None:
    out, outcome, _, _ = benchmark_run
    subsets = outcome.document["subsets"]
    for cohort in (SYNTHETIC, REAL, UNSEEN):
        assert {cohort, recipe_cohort(cohort)} <= set(subsets)
        assert subsets[recipe_cohort(cohort)]["exams"] == subsets[cohort]["exams"]
        assert set(subsets[recipe_cohort(cohort)]["table"]["M40"]) == set(subsets[cohort]["table"]["M40"])
    assert subsets[recipe_cohort(REAL)]["patients"] == 2  # clustered by real case, as phantom-only
    exams = pd.read_parquet(out / "exams.parquet")
    phantom, recipe = (set(exams.loc[exams["cohort"] == c, "exam"]) for c in (REAL, recipe_cohort(REAL)))
    assert phantom == recipe
    noise = exams[(exams["protocol"] == "M40") & (exams["method"] == "harmonized")].groupby("cohort")["noise_sd_hu"]
    assert noise.mean()[REAL] != noise.mean()[recipe_cohort(REAL)]  # converted by another harmonizer
    assert (out / "reports" / f"real-{NAMES[0]}-real-anatomy-training").is_dir()
    report = outcome.report.read_text()
    assert "## Real-anatomy training minus phantom-only training" in report
    assert f"## {recipe_cohort(REAL)}:" in report


def test_the_paired_comparison_and_the_targets_are_there(benchmark_run) -> None:
    _, outcome, _, _ = benchmark_run
    found = outcome.document["recipe_comparisons"]
    assert {(c["cohort"], c["protocol"]) for c in found} == {(c, p) for c in (SYNTHETIC, REAL, UNSEEN)
                                                              for p in PROTOCOLS}
    for c in found:
        d = c["dice_truth"]
        assert -1.0 <= d["mean"] <= 1.0 and d["ci_low"] <= d["mean"] <= d["ci_high"]
        assert d["verdict"] in {"real anatomy better", "real anatomy worse", "undecided"}
    targets = {t["name"].removeprefix(PREFIX): t for t in outcome.document["targets"] if t["name"].startswith(PREFIX)}
    assert set(targets) == {"reference segmenter on original M80, Dice vs truth",
                            "harmonized worst-protocol Dice vs truth", "GAN not below the best baseline on M40",
                            "harmonized noise SD within 25 % of the reference's",
                            "no synthetic / unseen-site figure worse than phantom-only"}
    for name, t in targets.items():
        assert t["verdict"] in {"met", "not met", "undecided"}, name
    assert 0.0 <= targets["reference segmenter on original M80, Dice vs truth"]["value"] <= 1.0
    assert targets["harmonized noise SD within 25 % of the reference's"]["value"] > 0
    lowest = min(c["dice_truth"]["mean"] for c in found if c["cohort"] != REAL)
    assert targets["no synthetic / unseen-site figure worse than phantom-only"]["value"] == pytest.approx(lowest)
