"""``ctharmony simulate``: a projection-domain simulated archive in the phantom archive's layout.

Layout (as :mod:`ctharmony.phantom.generate`, plus the truth images)::

    OUT/dicom/<site>/<patient>/<series>/<nnnn>.dcm   FBP, IR, M40, M60, M80, OPT (the six protocols),
                                                     FBP_soft, FBP_sharp, IR_<level> (other kernels, strengths)
    OUT/masks/<StudyInstanceUID>.nii.gz              true liver mask (uint8)
    OUT/truth/<StudyInstanceUID>/T40.npz ...         noise-free mono 40 / 60 / 80 keV images (``hu``, ``positions``)
    OUT/phantom.parquet                              one row per patient (the phantom's columns)

Anatomy: ``phantom`` draws patient ``i`` with ``numpy.random.default_rng([seed, i])`` (the phantom's
anatomy); ``real`` re-simulates the central ``slices`` of a real series and its liver mask
(:mod:`.real`), patient ``i`` varied by ``Augment.draw(default_rng([seed, i]))`` (patient 0: the source as
it is), on the source's slice positions. Patient ``i`` is scanned at site ``i % len(sites)`` at the site's
mAs times the augment's ``dose_scale``. ``series`` picks the series written (and reconstructed); the truth
images are always written. ``params`` (JSON) names the simulator, the site, the augment and the measured
liver HU.

Example (what ``ctharmony simulate`` runs; tests/simulate/test_simulate_archive.py runs a small one)::

    table = simulate_archive(Path("/tmp/sim"), patients=2, slices=4, size=128, series=["FBP", "M40", "M80"])
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ctharmony.archive.protocols import PAPER_PROTOCOLS as PROTOCOLS
from ctharmony.phantom.dicom_writer import deterministic_uid, protocol_tags, write_ct_series
from ctharmony.phantom.generate import COLUMNS, write_mask
from ctharmony.scanmodel.anatomy import patient_grid, sample_patient
from ctharmony.scanmodel.grid import Grid
from ctharmony.scanmodel.sites import ProjectionSite, load_site
from ctharmony.simulate.maps import Augment, MaterialMaps, phantom_maps, real_maps
from ctharmony.simulate.real import RealSource, real_grid
from ctharmony.simulate.scanner import Scanner

log = logging.getLogger(__name__)
TRUTH = ("T40", "T60", "T80")
ANATOMIES = ("phantom", "real")


def site_series(site: ProjectionSite, series: Sequence[str] | None = None) -> list[str]:
    """The series written at ``site``: by default the six protocols, FBP_soft, FBP_sharp and the other IR levels.

    With ``series``, those of them the site has (``IR_<archive level>`` too, the same image as ``IR``).

    Example:
        >>> site_series(load_site("ge-revolution"), ["M80", "IR_60", "IR_5"])
        ['M80', 'IR_60']
    """
    levels = [f"IR_{lv}" for lv in site.ir.strengths]
    if series is None:
        return [*PROTOCOLS, "FBP_soft", "FBP_sharp", *(n for n in levels if n != f"IR_{site.ir.archive_strength}")]
    return [n for n in (*PROTOCOLS, "FBP_soft", "FBP_sharp", *levels) if n in set(series)]


def series_choices(sites: Sequence[ProjectionSite]) -> list[str]:
    """Every series name some site of ``sites`` can write."""
    names = [*PROTOCOLS, "FBP_soft", "FBP_sharp"]
    return names + sorted({f"IR_{lv}" for site in sites for lv in site.ir.strengths})


def series_tags(site: ProjectionSite, name: str, thickness_mm: float) -> dict[str, Any]:
    """DICOM tags of series ``name`` (a protocol, ``FBP_soft``, ``FBP_sharp`` or ``IR_<level>``) at ``site``."""
    k = site.kernels
    level = ""
    if name in PROTOCOLS and name != "IR":
        tags, kernel = protocol_tags(name, k["standard"].name), k["standard"].name
    elif name.startswith("IR"):
        level = site.ir.archive_strength if name == "IR" else name[3:]
        kernel = k["standard"].name
        tags = protocol_tags("IR", kernel)
        tags["ConvolutionKernel"] = [kernel, level]
        tags["SeriesDescription"] = f"Abdomen PV {thickness_mm:g} {kernel} {site.ir.name} {level}"
        tags["SeriesNumber"] = 3 if name == "IR" else 20 + list(site.ir.strengths).index(level)
    else:
        role = name.split("_", 1)[1]
        kernel = k[role].name
        tags = protocol_tags("FBP", kernel)
        tags["SeriesNumber"] = {"soft": 8, "sharp": 9}[role]
    template = site.descriptions.get("IR" if name.startswith("IR") else name)
    if template is not None:
        tags["SeriesDescription"] = template.format(kernel=kernel, thickness=f"{thickness_mm:g}", ir=site.ir.name,
                                                    level=level)
    return tags


def patient_scanner(site: ProjectionSite, grid: Grid, augment: Augment, backend: str = "svmbir") -> Scanner:
    """The site's scanner for one patient: ``grid``'s matrix and field of view, mAs x ``augment.dose_scale``."""
    size = grid.shape[-1]
    return Scanner(site, size, backend=backend, mas=site.mas * augment.dose_scale, fov_mm=grid.spacing[2] * size)


def simulate_patient(out: Path, index: int, site: ProjectionSite, *, slices: int, size: int, seed: int,
                     backend: str = "svmbir", series: Sequence[str] | None = None,
                     augment: bool = False) -> dict[str, Any]:
    """Simulate, write and describe phantom patient ``index`` (one study: the site's series, mask, truth).

    ``augment``: scan at a drawn dose (``Augment.draw(default_rng([seed, index, 2])).dose_scale``); the
    phantom's own draw already varies the anatomy and the iodine.
    """
    rng = np.random.default_rng([seed, index])
    params = sample_patient(rng)
    grid = patient_grid(params, site, slices, size, z_shift_mm=float(rng.normal(0.0, 6.0)))
    maps = phantom_maps(params, grid)
    aug = Augment(dose_scale=Augment.draw(np.random.default_rng([seed, index, 2])).dose_scale) if augment \
        else Augment()
    extra = {**params, "dose_scale": aug.dose_scale} if augment else params
    return _scan_and_write(out, index, site, grid, maps, aug, seed=seed, backend=backend, series=series,
                           patient_id=f"SIMULATED-{index:04d}", uid_root="simulate", params=extra,
                           description="CT Abdomen DE portal venous (projection simulation)",
                           age_group=params["age_group"])


def simulate_real_patient(out: Path, index: int, site: ProjectionSite, source: RealSource, *, size: int, seed: int,
                          backend: str = "svmbir", series: Sequence[str] | None = None,
                          augment: bool = True, patient_id: str | None = None,
                          case: str | None = None) -> dict[str, Any]:
    """Simulate, write and describe patient ``index`` of real anatomy (``source``, see :mod:`.real`).

    ``augment``: patient ``index > 0`` is ``Augment.draw(default_rng([seed, index]))`` of the source;
    patient 0 (and every patient without ``augment``) the source as it is. ``patient_id`` (default
    ``SIMULATED-REAL-<index>``) and ``case`` (the real case's name, kept in ``params``): see :mod:`.real_cases`.
    """
    aug = Augment.draw(np.random.default_rng([seed, index])) if augment and index > 0 else Augment()
    grid = real_grid(source, site, size, aug.body_scale)
    maps = real_maps(source.hu, source.pixel_mm, size, grid.spacing[2] * size, liver=source.liver, augment=aug)
    params = {"anatomy": "real", "augment": dataclasses.asdict(aug), "source_liver_ml": source.liver_volume_ml(),
              "fov_mm": grid.spacing[2] * size, **({"real_case": case} if case else {})}
    return _scan_and_write(out, index, site, grid, maps, aug, seed=seed, backend=backend, series=series,
                           patient_id=patient_id or f"SIMULATED-REAL-{index:04d}", uid_root="simulate-real",
                           params=params,
                           description="CT Abdomen DE portal venous (simulation, real anatomy)",
                           age_group="adult")


def _scan_and_write(out: Path, index: int, site: ProjectionSite, grid: Grid, maps: MaterialMaps, augment: Augment, *,
                    seed: int, backend: str, series: Sequence[str] | None, patient_id: str, uid_root: str,
                    params: dict[str, Any], description: str, age_group: str) -> dict[str, Any]:
    """Scan ``maps`` at ``site``, write the chosen series, the truth and the mask; return the table row."""
    names = site_series(site, series)
    scanner = patient_scanner(site, grid, augment, backend)
    images = scanner.reconstruct(scanner.project(maps), maps, np.random.default_rng([seed, index, 1]), series=names)
    study_uid = deterministic_uid(uid_root, seed, index, "study")
    common = {
        "PatientName": patient_id, "PatientID": patient_id, "PatientBirthDate": None, "PatientSex": "O",
        "PatientIdentityRemoved": "YES", "BurnedInAnnotation": "NO", "StudyInstanceUID": study_uid,
        "StudyDate": "20240101", "StudyTime": "101500", "StudyID": f"{index + 1}", "AccessionNumber": None,
        "ReferringPhysicianName": None, "StudyDescription": description,
        "FrameOfReferenceUID": deterministic_uid(uid_root, seed, index, "frame"), "PositionReferenceIndicator": None,
        "Manufacturer": site.manufacturer, "ManufacturerModelName": site.model, "InstitutionName": site.institution,
        "StationName": site.name.upper(), "BodyPartExamined": "ABDOMEN", "PatientPosition": "HFS",
        "ContrastBolusAgent": "IODINE", "SliceThickness": f"{site.slice_thickness_mm:.6g}",
        "SpacingBetweenSlices": f"{grid.spacing[0]:.6g}",
        "ReconstructionDiameter": f"{grid.shape[-1] * grid.spacing[2]:.8g}",
    }
    row: dict[str, Any] = {"patient_id": patient_id, "study_uid": study_uid, "site": site.name,
                           "age_group": age_group, **{f"series_uid_{p}": None for p in PROTOCOLS}}
    parenchyma = phantom_parenchyma(maps)
    liver_hu = {}
    for name in names:
        series_uid = deterministic_uid(uid_root, seed, index, "series", name)
        tags = {**common, **series_tags(site, name, site.slice_thickness_mm), "SeriesInstanceUID": series_uid}
        write_ct_series(images[name], out / "dicom" / site.name / patient_id / name, tags=tags, origin=grid.origin,
                        spacing=grid.spacing, sop_uid_seed=f"{series_uid}|sop")
        if name in PROTOCOLS:
            row[f"series_uid_{name}"] = series_uid
        liver_hu[name] = round(float(images[name][parenchyma].mean()), 2) if parenchyma.any() else None
    truth_dir = out / "truth" / study_uid
    truth_dir.mkdir(parents=True, exist_ok=True)
    for name in TRUTH:
        np.savez_compressed(truth_dir / f"{name}.npz", hu=images[name], positions=grid.slice_positions())
    mask_rel = Path("masks") / f"{study_uid}.nii.gz"
    write_mask(maps.liver, grid, out / mask_rel)
    row["liver_volume_ml"] = float(maps.liver.sum()) * float(np.prod(grid.spacing)) / 1000.0
    row["mask_path"] = mask_rel.as_posix()
    row["params"] = json.dumps({**params, "index": index, "seed": seed, "simulator": "ctharmony.simulate",
                                "site": site.name, "site_source": Path(site.source).name, "backend": backend,
                                "series": names, "liver_hu_measured": liver_hu,
                                "timings_s": {k: round(v, 3) for k, v in scanner.timings.items()}}, sort_keys=True)
    return row


def phantom_parenchyma(maps) -> np.ndarray:
    """Liver voxels without the enhanced vessels (iodine below 1.3 x the liver's median)."""
    liver = maps.liver.astype(bool)
    if not liver.any():
        return liver
    return liver & (maps.iodine < 1.3 * np.median(maps.iodine[liver]))


def simulate_archive(out: Path, patients: int = 2, slices: int = 8, size: int = 128,
                     sites: Sequence[str] = ("siemens-force", "ge-revolution"), seed: int = 0,
                     backend: str = "svmbir", *, series: Sequence[str] | None = None, anatomy: str = "phantom",
                     real_series: Path | None = None, real_mask: Path | None = None,
                     real_cases: Sequence[tuple[Path, Path]] = (), augment: bool | None = None) -> pd.DataFrame:
    """Write a simulated multi-site archive under ``out`` (layout in the module docstring); return its table.

    Args:
        out: archive folder (created).
        patients: number of patients (one study each); patient ``i`` at site ``i % len(sites)``.
        slices: slices per series (real anatomy: the source's central ones, at most all of them);
            size: rows = columns.
        sites: packaged site names or site YAML paths.
        seed: generator seed (same seed, same pixels and UIDs).
        backend: projector backend (``svmbir`` or ``skimage``).
        series: series to write per patient (:func:`series_choices`); None: :func:`site_series`' default.
        anatomy: ``phantom`` or ``real`` (then ``real_series``, a DICOM folder, and ``real_mask``, its
            liver mask, or ``real_cases``, several such pairs, are needed: ``patients`` per real case,
            see :mod:`.real_cases`; the table then has ``real_case`` and ``real_copy`` columns).
        augment: vary each patient (see :func:`simulate_patient`, :func:`simulate_real_patient`); None:
            yes for real anatomy, no for the phantom (whose results are then those of earlier versions).

    Raises:
        ValueError: a bad count, an unknown series or anatomy, an unreadable real series or mask.
    """
    for name, value, low in (("patients", patients, 1), ("slices", slices, 1), ("size", size, 32)):
        if int(value) < low:
            raise ValueError(f"simulate_archive: {name} must be >= {low}, got {value}")
    if anatomy not in ANATOMIES:
        raise ValueError(f"simulate_archive: unknown anatomy {anatomy!r}; choices: {', '.join(ANATOMIES)}")
    site_list = [load_site(s) for s in sites]
    if not site_list:
        raise ValueError("simulate_archive: at least one site is needed")
    if series is not None:
        choices = series_choices(site_list)
        unknown = [s for s in series if s not in choices]
        if unknown or not len(series):
            raise ValueError(f"simulate_archive: unknown series {', '.join(unknown) or '(none given)'}; "
                             f"choices: {', '.join(choices)}")
    cases = [*real_cases, *([(real_series, real_mask)] if real_series is not None or real_mask is not None else [])]
    if anatomy == "real":
        missing = [n for n, v in (("real_series", real_series), ("real_mask", real_mask)) if v is None]
        if not cases or len(missing) == 1:
            raise ValueError(f"simulate_archive: anatomy 'real' needs {' and '.join(missing)} (or real_cases)")
        if any(None in case for case in cases):
            raise ValueError("simulate_archive: each of real_cases needs a series folder and a mask")
    elif cases:
        raise ValueError("simulate_archive: real series or masks given with anatomy 'phantom'")
    out = Path(out)
    start = time.perf_counter()
    if anatomy == "real":
        from ctharmony.simulate.real_cases import check_cases, simulate_real_cases

        check_cases(cases)  # before anything is written
        out.mkdir(parents=True, exist_ok=True)
        table = simulate_real_cases(out, cases, patients=patients, slices=slices, size=size, sites=site_list,
                                    seed=seed, backend=backend, series=series, augment=augment)
    else:
        out.mkdir(parents=True, exist_ok=True)
        table = pd.DataFrame([simulate_patient(out, i, site_list[i % len(site_list)], slices=slices, size=size,
                                               seed=seed, backend=backend, series=series, augment=bool(augment))
                              for i in range(patients)])[COLUMNS]
    table.to_parquet(out / "phantom.parquet", index=False)
    log.info("simulated %s archive: %d patients (%d real cases) x %d slices at %dx%d in %.1f s (%s)", anatomy,
             len(table), len(cases), slices, size, size, time.perf_counter() - start, out)
    return table
