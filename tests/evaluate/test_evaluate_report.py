from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from typer.testing import CliRunner

from ctharmony import tracking
from ctharmony.cli import app
from ctharmony.evaluate.report import ReportFiles


@pytest.fixture(scope="module")
def dicom_cohort(tmp_path_factory, kit):
    """The synthetic cohort with DICOM series (secret PatientID inside) and a catalog of the originals."""
    return kit.make_cohort(tmp_path_factory.mktemp("dicom-cohort"), with_dicom=True)


def forbidden(cohort, kit) -> list[str]:
    return [kit.SECRET_PATIENT_ID, kit.SECRET_PATIENT_NAME, *cohort.study_uids, *cohort.series_uids]


@pytest.fixture(scope="module")
def cli_run(dicom_cohort, tmp_path_factory):
    """``ctharmony evaluate`` once on the DICOM cohort, with true masks and MLflow logging."""
    out = tmp_path_factory.mktemp("cli") / "report"
    result = CliRunner().invoke(app, ["evaluate", "--results", str(dicom_cohort.results), "--out", str(out),
                                      "--truth", str(dicom_cohort.truth), "--experiment", "eval-test"])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_report_has_the_paper_tables_and_no_phi(dicom_cohort, kit, cli_run):
    out, output = cli_run
    assert "Table 2. Dice" in output and str(out / "report.html") in output
    files = ReportFiles(out, out / "report.md", out / "report.html", sorted((out / "plots").glob("*.png")),
                        [out / "exams.csv", out / "summary.csv", out / "site_summary.csv",
                         out / "radiomics_features.csv", out / "radiomics_ccc.csv"])
    md, page = files.markdown.read_text(encoding="utf-8"), files.html.read_text(encoding="utf-8")
    assert {p.name for p in files.plots} == {"bland_altman_FBP.png", "bland_altman_M40.png",
                                             "bland_altman_M80.png", "example_slices.png", "radiomics_ccc.png"}
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in files.plots)
    for title in ("Table 2. Dice (%)", "Table 3a.", "Table 3b.", "Table 4. Volume CCC", "Bland-Altman",
                  "Table 2b. Dice (%) against the true masks", "Per-site Dice"):
        assert title in md and title in page
    # Table 2 row of M40, with the numbers of the fixture
    dice = {m: np.array(kit.expected_dice("M40", m)) * 100 for m in ("original", "harmonized", "linear-recalibration")}
    cells = [f"{d.mean():.2f} ± {d.std(ddof=1):.2f}" for d in dice.values()]
    p_linear = scipy_stats.ttest_rel(dice["linear-recalibration"], dice["original"]).pvalue
    p_text = "<0.001" if p_linear < 0.001 else f"{p_linear:.3f}"
    row = next(line for line in md.splitlines() if line.startswith("| M40 | 4 |"))
    assert [c.strip() for c in row.strip("| ").split("|")] == ["M40", "4", cells[0], cells[1], "<0.001", cells[2],
                                                              p_text]
    assert cells[1] in page and "Harmonized (GAN)" in page
    # true masks aligned through the converted series' DICOM geometry (the npz files carry none)
    exams = pd.read_csv(out / "exams.csv")
    m80 = exams.query("protocol == 'M80' and method == 'original'").sort_values("exam")
    expected = [2 * kit.voxels(h) / (kit.voxels(h) + kit.voxels(h + 1)) for h in kit.HEIGHTS]
    assert m80["dice_truth"].to_numpy() == pytest.approx(expected)
    # self-contained HTML: every figure embedded, nothing linked
    assert page.count("data:image/png;base64,") == 5 and "src='plots/" not in page
    assert "![Example slices, " in md and "](plots/example_slices.png)" in md
    # no PHI anywhere in the written text: names, IDs, UIDs
    for path in [files.markdown, files.html, *files.tables]:
        text = path.read_text(encoding="utf-8")
        leaked = [s for s in forbidden(dicom_cohort, kit) if s in text]
        assert not leaked, (path.name, leaked)
    # the pseudonymous key is what identifies an exam
    assert "pk0f00d" in (out / "exams.csv").read_text(encoding="utf-8")


def test_evaluation_is_in_the_mlflow_store(dicom_cohort, kit, cli_run, isolated_home):
    import mlflow

    tracking.configure()
    runs = mlflow.search_runs(experiment_names=["eval-test"], output_format="list")
    assert len(runs) == 1
    run = runs[0]
    m40 = np.array(kit.expected_dice("M40", "harmonized"))
    assert run.data.metrics["dice/M40/harmonized"] == pytest.approx(m40.mean())
    assert run.data.metrics["dice/M40/original"] == pytest.approx(np.mean(kit.expected_dice("M40", "original")))
    reference = np.array(kit.expected_volume("M80", "original"))
    ratio = 100 * np.abs(np.array(kit.expected_volume("M40", "original")) - reference) / reference
    assert run.data.metrics["volume_ratio/M40/original"] == pytest.approx(ratio.mean())
    assert "ccc/M40/harmonized" in run.data.metrics and "site/site-a/dice/FBP/harmonized" in run.data.metrics
    assert run.data.params["model_uri/harmonized"] == "models:/ctharmony-harmonizer/3"
    assert run.data.params["model_uri/linear-recalibration"] == "models:/baseline-linear-recalibration/3"
    assert run.data.params["exams"] == "4" and run.data.params["failed_series"] == "1"
    assert run.data.params["truth_masks"] == "True" and "dice_truth/M80/original" in run.data.metrics
    artifacts = {a.path for a in mlflow.artifacts.list_artifacts(run_id=run.info.run_id, artifact_path="report")}
    assert {"report/report.md", "report/report.html", "report/exams.csv", "report/plots"} <= artifacts
    plots = {a.path for a in mlflow.artifacts.list_artifacts(run_id=run.info.run_id, artifact_path="report/plots")}
    assert "report/plots/bland_altman_M40.png" in plots and "report/plots/example_slices.png" in plots
    html = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/report/report.html")
    assert "Table 4. Volume CCC" in html
    # the rows are in the SQLite store itself, with nothing identifying in params or tags
    with sqlite3.connect(isolated_home / "mlflow.db") as db:
        stored = dict(db.execute("SELECT key, value FROM metrics WHERE run_uuid = ?", (run.info.run_id,)))
        texts = [v for (v,) in db.execute("SELECT value FROM params WHERE run_uuid = ? UNION ALL "
                                          "SELECT value FROM tags WHERE run_uuid = ?", (run.info.run_id,) * 2)]
    assert stored["dice/M40/harmonized"] == pytest.approx(m40.mean())
    assert not [s for s in forbidden(dicom_cohort, kit) if any(s in t for t in texts)]


def test_cli_evaluate_names_a_bad_results_file(tmp_path):
    bad = tmp_path / "results.parquet"
    bad.write_bytes(b"not parquet")
    result = CliRunner().invoke(app, ["evaluate", "--results", str(bad), "--out", str(tmp_path / "r"), "--no-mlflow"])
    assert result.exit_code == 2
    assert "cannot read results file" in result.output and str(bad) in result.output
    assert not (tmp_path / "r").exists()
