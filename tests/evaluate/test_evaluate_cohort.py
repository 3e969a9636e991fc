from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from ctharmony.evaluate import cohort as cohort_mod
from ctharmony.evaluate import metrics
from ctharmony.evaluate.stats import lins_ccc


def summary_row(summary: pd.DataFrame, protocol: str, method: str, **keys) -> pd.Series:
    rows = summary[(summary["protocol"] == protocol) & (summary["method"] == method)]
    for column, value in keys.items():
        rows = rows[rows[column] == value]
    assert len(rows) == 1, (protocol, method, keys)
    return rows.iloc[0]


def test_cohort_dice_volumes_and_statistics(synthetic_cohort, kit):
    cohort = cohort_mod.build_cohort([synthetic_cohort.results], reference_protocol="M80")
    assert cohort.protocols == ["FBP", "M40", "M80"]
    assert cohort.methods == ["original", "harmonized", "linear-recalibration"]
    assert cohort.failed_series == 1 and not cohort.has_truth
    assert cohort.model_uris == {"harmonized": "models:/ctharmony-harmonizer/3",
                                 "linear-recalibration": "models:/baseline-linear-recalibration/3",
                                 "segmenter": "models:/ctharmony-liver-unet/2"}
    exams = cohort.exams
    assert sorted(exams["exam"].unique()) == ["exam-001", "exam-002", "exam-003", "exam-004"]
    for (protocol, method) in kit.SHRINK:
        rows = exams[(exams["protocol"] == protocol) & (exams["method"] == method)].sort_values("exam")
        assert rows["volume_ml"].to_numpy() == pytest.approx(kit.expected_volume(protocol, method))
        if (protocol, method) == ("M80", "original"):
            assert rows["dice"].isna().all()  # the reference is not compared with itself
            continue
        dice = kit.expected_dice(protocol, method)
        assert rows["dice"].to_numpy() == pytest.approx(dice)
        reference = np.array(kit.expected_volume("M80", "original"))
        volume = np.array(kit.expected_volume(protocol, method))
        ratio = 100 * (volume - reference) / reference
        assert rows["volume_ratio_pct"].to_numpy() == pytest.approx(ratio)
        row = summary_row(cohort.summary, protocol, method)
        assert row["n"] == 4
        assert row["dice_mean"] == pytest.approx(np.mean(dice))
        assert row["dice_sd"] == pytest.approx(np.std(dice, ddof=1))
        assert row["abs_volume_diff_ml_mean"] == pytest.approx(np.mean(np.abs(volume - reference)))
        assert row["abs_volume_ratio_pct_mean"] == pytest.approx(np.mean(np.abs(ratio)))
        assert row["ba_mean_pct"] == pytest.approx(np.mean(ratio))
        assert row["ba_loa_low_pct"] == pytest.approx(np.mean(ratio) - 1.96 * np.std(ratio, ddof=1))
        ccc = lins_ccc(volume, reference)
        assert row["ccc"] == pytest.approx(ccc.ccc, nan_ok=True)
        if protocol == "M80":
            assert math.isnan(row["dice_p"])  # no original Dice to pair with on the reference protocol
        elif method != "original":
            original = kit.expected_dice(protocol, "original")
            assert row["dice_p"] == pytest.approx(scipy_stats.ttest_rel(dice, original).pvalue)
    # the M40 failure and the recovery, as the fixture built them
    assert summary_row(cohort.summary, "M40", "original")["dice_mean"] < 0.5
    assert summary_row(cohort.summary, "M40", "harmonized")["dice_mean"] > 0.9
    # per-site breakdown: two sites of two exams
    site = cohort.site_summary
    assert site is not None and set(site["site"]) == {"site-a", "site-b"}
    fbp_b = summary_row(site, "FBP", "harmonized", site="site-b")
    assert fbp_b["n"] == 2 and fbp_b["dice_mean"] == pytest.approx(np.mean(kit.expected_dice("FBP", "harmonized")[2:]))
    # nothing identifying in the tables
    assert "study_uid" not in exams.columns and "series_key" not in exams.columns
    assert not any(uid in exams.to_csv() for uid in synthetic_cohort.study_uids)


def test_cohort_against_true_masks(synthetic_cohort, kit):
    """True masks (stored y-flipped) are aligned through the geometry saved in the mask files."""
    results = pd.read_parquet(synthetic_cohort.results)
    for path in set(results["mask_original_path"]) | set(results["mask_harmonized_path"]):
        if path:
            with np.load(path) as data:
                mask, spacing = data["mask"], data["spacing"]
            np.savez_compressed(path, mask=mask, spacing=spacing, origin=np.array(kit.ORIGIN), direction=np.eye(3))
    cohort = cohort_mod.build_cohort([synthetic_cohort.results], truth=synthetic_cohort.truth)
    assert cohort.has_truth
    rows = cohort.exams[(cohort.exams["protocol"] == "M80") & (cohort.exams["method"] == "original")]
    expected = [2 * kit.voxels(h) / (kit.voxels(h) + kit.voxels(h + kit.TRUTH_EXTRA_ROWS)) for h in kit.HEIGHTS]
    assert rows.sort_values("exam")["dice_truth"].to_numpy() == pytest.approx(expected)
    assert rows["truth_volume_ml"].to_numpy() == pytest.approx(
        [kit.voxels(h + 1) * kit.VOXEL_ML for h in kit.HEIGHTS])
    m80 = summary_row(cohort.summary, "M80", "original")
    assert m80["dice_truth_mean"] == pytest.approx(np.mean(expected)) and m80["dice_truth_n"] == 4
    assert math.isfinite(m80["ccc_truth"])


def test_old_mask_files_take_the_geometry_of_their_converted_series(tmp_path, kit):
    """Mask files without origin/direction (older results) are aligned through the converted DICOM's headers."""
    cohort_files = kit.make_cohort(tmp_path, with_dicom=True)
    cohort = cohort_mod.build_cohort([cohort_files.results], truth=cohort_files.truth)
    rows = cohort.exams[(cohort.exams["protocol"] == "M80") & (cohort.exams["method"] == "original")]
    expected = [2 * kit.voxels(h) / (kit.voxels(h) + kit.voxels(h + kit.TRUTH_EXTRA_ROWS)) for h in kit.HEIGHTS]
    assert rows.sort_values("exam")["dice_truth"].to_numpy() == pytest.approx(expected)
    for folder in (tmp_path / "converted").rglob("*"):
        if folder.is_dir() and any(folder.glob("*.dcm")):
            (sorted(folder.glob("*.dcm"))[0]).write_bytes(b"not DICOM")
    cohort_mod._dicom_geometry.cache_clear()
    with pytest.raises(metrics.MaskFileError, match="0001.dcm: not a readable DICOM file"):
        cohort_mod.build_cohort([cohort_files.results], truth=cohort_files.truth)


def test_results_errors_name_the_file(tmp_path, synthetic_cohort):
    bad = tmp_path / "bad.parquet"
    pd.read_parquet(synthetic_cohort.results).drop(columns=["mask_original_path"]).to_parquet(bad)
    with pytest.raises(cohort_mod.ResultsError, match=r"bad.parquet lacks column\(s\) mask_original_path"):
        cohort_mod.build_cohort([bad])
    with pytest.raises(cohort_mod.ResultsError, match="nothing.parquet"):
        cohort_mod.build_cohort([tmp_path / "nothing.parquet"])
    with pytest.raises(cohort_mod.ResultsError, match="true-mask folder .*nowhere does not exist"):
        cohort_mod.build_cohort([synthetic_cohort.results], truth=tmp_path / "nowhere")
    failed = tmp_path / "failed.parquet"
    pd.read_parquet(synthetic_cohort.results).assign(status="failed").to_parquet(failed)
    with pytest.raises(cohort_mod.ResultsError, match="no converted series"):
        cohort_mod.build_cohort([failed])


def test_method_names_and_orders():
    assert cohort_mod.method_of("baseline-histogram-matching", ["g"]) == "histogram-matching"
    assert cohort_mod.method_of("ctharmony-harmonizer", ["ctharmony-harmonizer"]) == "harmonized"
    assert cohort_mod.method_of("gan-b", ["gan-a", "gan-b"]) == "gan-b"
    assert cohort_mod.order_protocols(["unknown", "OPT", "M40", "FBP"]) == ["FBP", "M40", "OPT", "unknown"]
    assert cohort_mod.order_methods(["z", "harmonized", "original", "a"]) == ["original", "harmonized", "a", "z"]
