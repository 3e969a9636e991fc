"""``ctharmony phantom``, ``simulate`` and ``catalog``: synthetic archives in, any archive catalogued."""

from __future__ import annotations

from typing import Annotated

import typer

from ctharmony.cli.common import (
    AddressOption,
    app,
    preflight,
)


@app.command()
def phantom(
    out: Annotated[str, typer.Argument(help="Archive folder to write (dicom/, masks/, phantom.parquet).")],
    patients: Annotated[int, typer.Option(help="Patients (one study of six series each).")] = 4,
    slices: Annotated[int, typer.Option(help="Slices per series.")] = 16,
    size: Annotated[int, typer.Option(help="Rows = columns of each image.")] = 128,
    sites: Annotated[int, typer.Option(help="Scanner sites (heterogeneous tags, noise, FOV, thickness).")] = 2,
    seed: Annotated[int, typer.Option(help="Generator seed (same seed, same pixels).")] = 0,
    preview: Annotated[bool, typer.Option("--preview", help="Also write preview.png (six protocols).")] = False,
    workers: Annotated[int, typer.Option(help="Processes generating patients in parallel.")] = 1,
    tilt_site: Annotated[bool, typer.Option("--tilt-site", help="Add site-tilt: a GE-like site scanning with "
                                            "10-20 degrees of gantry tilt (sheared series).")] = False,
    gap_studies: Annotated[int, typer.Option(help="Studies missing 2 slices in the middle (a gap).")] = 0,
    variable_spacing_studies: Annotated[int, typer.Option(help="Studies with uneven slice spacing.")] = 0,
) -> None:
    """Generate the physics-based dual-energy CT phantom archive (FBP, IR, M40, M60, M80, OPT)."""
    from pathlib import Path

    from ctharmony.phantom import generate_archive
    from ctharmony.phantom.cases import GeometryCases

    root = Path(out)
    try:
        cases = GeometryCases(tilt_site=tilt_site, gap_studies=gap_studies,
                              variable_spacing_studies=variable_spacing_studies)
        table = generate_archive(root, patients=patients, slices=slices, size=size, sites=sites, seed=seed,
                                 preview=preview, workers=workers, geometry=cases)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    typer.echo(f"wrote {len(table)} studies x 6 series to {root / 'dicom'}; table {root / 'phantom.parquet'}")
    if preview:
        typer.echo(f"preview: {root / 'preview.png'}")


@app.command()
def simulate(
    out: Annotated[str, typer.Argument(help="Archive folder to write (dicom/, masks/, truth/, phantom.parquet).")],
    patients: Annotated[int, typer.Option(help="Patients (one study each, at site i % len(sites)).")] = 2,
    slices: Annotated[int, typer.Option(help="Slices per series.")] = 8,
    size: Annotated[int, typer.Option(help="Rows = columns of each image.")] = 128,
    sites: Annotated[str, typer.Option(help="Comma-separated packaged site names or site YAML paths.")] = (
        "siemens-force,ge-revolution"),
    seed: Annotated[int, typer.Option(help="Generator seed (same seed, same pixels).")] = 0,
    backend: Annotated[str, typer.Option(help="Projector backend: svmbir or skimage.")] = "svmbir",
    anatomy: Annotated[str, typer.Option(help="phantom (drawn anatomy) or real (--real-series, --real-mask).")] = (
        "phantom"),
    real_series: Annotated[list[str] | None, typer.Option(
        "--real-series", help="Real anatomy: a folder of one axial CT series. Repeatable: one real case each, "
        "--patients simulated patients per case (as it is, then augmented).")] = None,
    real_mask: Annotated[list[str] | None, typer.Option(
        "--real-mask", help="Real anatomy: its liver mask (NIfTI); repeatable, in --real-series' order.")] = None,
    real_catalog: Annotated[str | None, typer.Option(
        help="Real anatomy: a catalog of real series; each study with a mask in --real-masks is a case.")] = None,
    real_masks: Annotated[str | None, typer.Option(
        help="Real anatomy with --real-catalog: folder of liver masks <StudyInstanceUID>.nii.gz.")] = None,
    series: Annotated[str | None, typer.Option(help="Comma-separated series to write, e.g. FBP,IR,M40,M80 "
                                                    "(default: all).")] = None,
    augment: Annotated[bool | None, typer.Option("--augment/--no-augment", help="Vary each patient (dose; real "
                                                 "anatomy: shape, iodine too). Default: real anatomy only.")] = None,
) -> None:
    """Projection-domain scanner simulation (spectra, Poisson noise, FBP kernels, IR, dual-energy mono).

    Real anatomy: ``ctharmony simulate OUT --anatomy real --real-series DIR --real-mask FILE --series M40,M80``;
    several real cases: repeat ``--real-series`` / ``--real-mask``, or ``--real-catalog C --real-masks DIR``
    (phantom.parquet's ``real_case`` says which case each simulated patient comes from).
    """
    from pathlib import Path

    from ctharmony.config import ConfigError
    from ctharmony.simulate import simulate_archive

    folders, masks = list(real_series or ()), list(real_mask or ())
    if (real_catalog is None) != (real_masks is None):
        raise typer.BadParameter("--real-catalog and --real-masks go together", param_hint="--real-catalog")
    if real_catalog is not None:
        from ctharmony.simulate.real_cases import cases_from_catalog

        try:
            found = cases_from_catalog(Path(real_catalog), Path(real_masks))
        except (OSError, ValueError) as err:
            raise typer.BadParameter(str(err), param_hint="--real-catalog") from err
        folders += [str(f) for f, _ in found]
        masks += [str(m) for _, m in found]
    if anatomy == "real" and (not folders or not masks):
        raise typer.BadParameter("--anatomy real needs --real-series DIR and --real-mask FILE", param_hint="--anatomy")
    if len(folders) != len(masks):
        raise typer.BadParameter(f"give one --real-mask per --real-series ({len(folders)} series, {len(masks)} masks)",
                                 param_hint="--real-mask")
    if anatomy != "real" and folders:
        raise typer.BadParameter("--real-series needs --anatomy real", param_hint="--anatomy")
    try:
        table = simulate_archive(Path(out), patients=patients, slices=slices, size=size, seed=seed, backend=backend,
                                 sites=[s.strip() for s in sites.split(",") if s.strip()],
                                 series=None if series is None else [s.strip() for s in series.split(",") if s.strip()],
                                 anatomy=anatomy, real_cases=[(Path(s), Path(m)) for s, m in zip(folders, masks,
                                                                                                  strict=True)],
                                 augment=augment)
    except (ConfigError, ValueError) as err:
        raise typer.BadParameter(str(err)) from err
    cases = f" of {table['real_case'].nunique()} real cases" if "real_case" in table.columns else ""
    typer.echo(f"wrote {len(table)} simulated studies{cases} to {Path(out) / 'dicom'}; "
               f"table {Path(out) / 'phantom.parquet'}")


@app.command()
def catalog(
    archive: Annotated[str, typer.Argument(help="Folder of DICOM files (any layout; links are not followed).")],
    out: Annotated[str, typer.Option("--out", help="Catalog Parquet file to write.")] = "catalog.parquet",
    address: AddressOption = None,
    rules: Annotated[str | None, typer.Option("--rules", help="YAML protocol rules tried before the defaults.")] = None,
    chunk_size: Annotated[int | None, typer.Option(help="Files per header-read task (default: automatic).")] = None,
) -> None:
    """Catalog a DICOM archive on Ray (headers only): one Parquet row per series, plus quarantine rows."""
    from pathlib import Path

    from ctharmony import cluster
    from ctharmony.archive.catalog import build_catalog, summarize

    if not Path(archive).is_dir():
        raise typer.BadParameter(f"{archive} is not a folder", param_hint="ARCHIVE")
    if rules:
        from ctharmony.cli.preflight import check_file

        preflight(lambda: check_file(rules, "--rules"))
    cluster.connect(address)
    df = build_catalog(Path(archive), Path(out), rules=rules, chunk_size=chunk_size)
    typer.echo(summarize(df))
    typer.echo(f"catalog: {out} ({len(df)} rows, {df.attrs['files']} files, {df.attrs['seconds']:.1f} s)")
