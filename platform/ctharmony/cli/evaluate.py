"""``ctharmony evaluate``: the cohort report of one or more conversions."""

from __future__ import annotations

from typing import Annotated

import typer

from ctharmony.cli.common import (
    app,
    preflight,
)


@app.command()
def evaluate(
    results: Annotated[list[str], typer.Option("--results", help="results.parquet of a conversion (repeatable: "
                                               "e.g. the GAN's and the baselines').")],
    out: Annotated[str, typer.Option("--out", help="Report folder (report.md, report.html, plots/, CSVs).")],
    reference_protocol: Annotated[str, typer.Option(help="Protocol whose original mask is the reference.")] = "M80",
    truth: Annotated[str | None, typer.Option(help="Folder of true masks <StudyInstanceUID>.nii.gz.")] = None,
    truth_images: Annotated[str | None, typer.Option(help="Folder of noise-free truth images "
                                                     "<StudyInstanceUID>/T80.npz (ctharmony simulate's OUT/truth): "
                                                     "MAE / SSIM to T80 and truth-based noise.")] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment to log the run in.")] = "ctharmony-evaluate",
    catalog: Annotated[str | None, typer.Option(help="Catalog for the original images of the example "
                                                "slices (default: catalog.parquet beside the results).")] = None,
    mlflow: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="Log the evaluation to MLflow.")] = True,
    radiomics: Annotated[bool, typer.Option("--radiomics/--no-radiomics", help="Radiomic features of every series "
                                            "in the reference liver and their reproducibility (reads the images).")]
    = True,
) -> None:
    """Cohort report: Dice, volume difference, CCC (95% CI), Bland-Altman, paired t-test per protocol and method."""
    from ctharmony.cli.preflight import check_catalog, check_file, check_folder

    def check() -> None:
        for path in results:
            check_file(path, "--results")
        if truth:
            check_folder(truth, "--truth")
        if truth_images:
            check_folder(truth_images, "--truth-images")
        if catalog:
            check_catalog(catalog)

    preflight(check)
    from ctharmony.evaluate.cohort import ResultsError
    from ctharmony.evaluate.metrics import MaskFileError
    from ctharmony.evaluate.run import evaluate as run_evaluation

    try:
        done = run_evaluation(results, out, reference_protocol=reference_protocol, truth=truth,
                              experiment=experiment if mlflow else None, catalog=catalog,
                              truth_images=truth_images, radiomics=radiomics)
    except (ResultsError, MaskFileError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    typer.echo(done.headline)
    typer.echo(f"\nReport: {done.files.html}  (Markdown: {done.files.markdown})")
    if done.run_id:
        typer.echo(f"MLflow run {done.run_id} in experiment {experiment!r}: `ctharmony ui` to browse it.")
