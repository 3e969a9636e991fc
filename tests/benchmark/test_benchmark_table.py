"""One seed's benchmark table, from cohort summaries made by the evaluate code."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ctharmony.benchmark.design import SYNTHETIC, UNSEEN
from ctharmony.benchmark.table import subset_table, worst_protocol
from ctharmony.evaluate.cohort import summarize

METHODS = ("original", "harmonized", "histogram-matching", "linear-recalibration")


def exams(dice: dict[tuple[str, str], list[float]], mae: dict[tuple[str, str], list[float]] | None = None
          ) -> pd.DataFrame:
    """A per-exam table as ``exam_table`` makes it: Dice per (protocol, method) and exam, volumes alike."""
    rows = []
    for (protocol, method), values in dice.items():
        for i, value in enumerate(values):
            rows.append({"exam": f"exam-{i + 1:03d}", "patient_key": f"p{i}", "site": "s", "protocol": protocol,
                         "method": method, "volume_ml": 100.0 * value, "dice": value,
                         "reference_volume_ml": 100.0, "volume_diff_ml": 100.0 * value - 100.0,
                         "volume_ratio_pct": 100.0 * value - 100.0, "dice_truth": value, "truth_volume_ml": 100.0,
                         "mae_t80_hu": (mae or {}).get((protocol, method), [np.nan] * len(values))[i]})
    table = pd.DataFrame(rows)
    table["abs_volume_diff_ml"] = table["volume_diff_ml"].abs()
    table["abs_volume_ratio_pct"] = table["volume_ratio_pct"].abs()
    return table


def cohort_table(harmonized_m40: list[float], linear_m40: list[float], reference: list[float],
                 mae: dict | None = None) -> dict:
    """A three-exam cohort's table: M40 as given, FBP and M80 fixed."""
    dice = {("M40", "original"): [0.05, 0.1, 0.08], ("M40", "harmonized"): harmonized_m40,
            ("M40", "linear-recalibration"): linear_m40, ("M40", "histogram-matching"): [0.5, 0.6, 0.55],
            ("FBP", "original"): [0.9, 0.92, 0.91], ("FBP", "harmonized"): [0.97, 0.96, 0.98],
            ("FBP", "linear-recalibration"): [0.95, 0.94, 0.96], ("FBP", "histogram-matching"): [0.9, 0.9, 0.9],
            ("M80", "harmonized"): reference, ("M80", "linear-recalibration"): reference,
            ("M80", "histogram-matching"): reference}
    return subset_table(summarize(exams(dice, mae)))


def test_table_holds_the_cohort_means_per_protocol_and_method() -> None:
    table = cohort_table([0.9, 0.95, 1.0], [0.8, 0.7, 0.9], [1.0, 1.0, 1.0])
    assert table["M40"]["harmonized"]["dice"] == pytest.approx(np.mean([0.9, 0.95, 1.0]), abs=1e-4)
    assert table["M40"]["linear-recalibration"]["dice_sd"] == pytest.approx(np.std([0.8, 0.7, 0.9], ddof=1), abs=1e-4)
    assert table["M40"]["harmonized"]["n"] == 3 and isinstance(table["M40"]["harmonized"]["n"], int)
    assert table["M40"]["harmonized"]["mae_t80_hu"] is None  # NaN in, null out
    assert worst_protocol(table, "original", "M80") == "M40"
    assert worst_protocol(table, "harmonized", "M80") == "M40"
    json.dumps(table)  # plain JSON


def test_radiomics_reproducibility_reaches_benchmark_json_report_and_metrics() -> None:
    """Each seed's cohort-level share of reproducible features, averaged over seeds with their range."""
    from ctharmony.benchmark.publish import benchmark_metrics, radiomics_markdown
    from ctharmony.benchmark.workflow import radiomics_document, radiomics_shares

    def summary(gan: float) -> pd.DataFrame:
        return pd.DataFrame({"protocol": ["M40", "M40"], "method": ["original", "harmonized"],
                             "radiomics_reproducible": [0.10, gan], "radiomics_reproducible_truth": [0.0, gan / 2]})

    shares = pd.concat([radiomics_shares(summary(gan)).assign(seed=seed, archive=SYNTHETIC, cohort=SYNTHETIC)
                        for seed, gan in ((0, 0.5), (1, 0.7))], ignore_index=True)
    shares = pd.concat([shares, radiomics_shares(pd.DataFrame({"protocol": ["M40"], "method": ["linear"]}))
                        .assign(seed=0, archive=UNSEEN, cohort=UNSEEN)], ignore_index=True)  # no features: absent
    document = radiomics_document(shares)
    gan = document[SYNTHETIC]["M40"]["harmonized"]
    assert gan["radiomics_reproducible"] == {"mean": 0.6, "min": 0.5, "max": 0.7}
    assert gan["radiomics_reproducible_truth"]["mean"] == pytest.approx(0.3)
    assert UNSEEN not in document
    text = "\n".join(radiomics_markdown(document))
    assert "| synthetic | M40 | harmonized | 0.60 [0.50, 0.70] | 0.30 [0.25, 0.35] |" in text
    metrics = benchmark_metrics({"subsets": {}, "comparisons": [], "targets": [], "seconds": {},
                                 "radiomics": document})
    assert metrics[f"{SYNTHETIC}/radiomics_reproducible/M40/harmonized"] == pytest.approx(0.6)
