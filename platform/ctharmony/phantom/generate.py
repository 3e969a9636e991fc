"""Generate the phantom archive: DICOM series, true liver masks (NIfTI) and ``phantom.parquet``.

Layout (cross-team contract)::

    OUT/dicom/<site>/<patient>/<protocol>/<nnnn>.dcm   six series per study, one file per slice
    OUT/masks/<StudyInstanceUID>.nii.gz                 true liver mask (uint8), the study's geometry
    OUT/masks/<StudyInstanceUID>.slices.npz             (tilted / irregular studies) the mask per slice
    OUT/phantom.parquet                                 one row per patient
    OUT/preview.png                                     (``preview=True``) one slice, six protocols

``phantom.parquet`` columns: patient_id, study_uid, site, age_group, liver_volume_ml (the liver inside
the scanned slab, = the mask's volume), series_uid_<P> for the six protocols, mask_path (relative to
OUT) and params (JSON: the patient's anatomy and enhancement, the site, the grid, the whole liver's
volume ``liver_total_volume_ml`` and the measured parenchyma HU per protocol ``liver_hu_measured``).

Opt-in geometry cases (``geometry=GeometryCases(...)``, see :mod:`ctharmony.phantom.cases`): a
gantry-tilted site, studies with a gap, studies with uneven slice spacing. Their images and masks are
sampled from the anatomy at each slice's true plane. As a NIfTI cannot hold a sheared or irregular
stack, such a study's ``masks/<uid>.nii.gz`` is the anatomy evaluated (not resampled) on the axial
grid covering the scan (``Grid.regular_cover``: same x / y sampling, nominal slice step), and
``masks/<uid>.slices.npz`` holds the mask in the series' own slices with their exact positions (see
:mod:`ctharmony.phantom.truth`). Their ``params`` add ``geometry_case``, ``slice_mask_path``, the
grid's ``positions_mm`` and ``tilt_deg``, and ``regular_mask_grid``; liver_volume_ml is mask voxels x
pixel area x SliceThickness (the slab actually reconstructed: a gap is not counted).

Each patient's anatomy is built once; the six reconstructions share it, the geometry and the
FrameOfReferenceUID. Patient ``i`` uses ``numpy.random.default_rng([seed, i])``, so the same seed
gives byte-identical pixel data, independent of ``workers``.

Example::

    table = generate_archive(Path("/tmp/ph"), patients=2, slices=8, size=64)
    sorted(table.columns)[:3]
    # -> ['age_group', 'liver_volume_ml', 'mask_path']
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ctharmony.archive.protocols import PAPER_PROTOCOLS
from ctharmony.phantom import physics
from ctharmony.phantom.cases import GeometryCases, case_grid
from ctharmony.phantom.dicom_writer import deterministic_uid, protocol_tags, write_ct_series
from ctharmony.phantom.truth import SLICE_MASK_SUFFIX, SliceMask, save_slice_mask
from ctharmony.scanmodel.anatomy import Grid, build_anatomy, patient_grid, sample_patient
from ctharmony.scanmodel.sites import ImageSite, TiltedSite, make_sites
from ctharmony.scanmodel.tissues import LABEL

log = logging.getLogger(__name__)
PROTOCOLS = PAPER_PROTOCOLS  # one study = one series of each of the registry's six
COLUMNS = ["patient_id", "study_uid", "site", "age_group", "liver_volume_ml",
           *[f"series_uid_{p}" for p in PROTOCOLS], "mask_path", "params"]


def liver_total_volume_ml(params: dict[str, Any]) -> float:
    """Volume of the whole liver (not only the scanned slab), on a coarse 5 mm grid."""
    step = 5.0
    grid = Grid(shape=(66, 76, 76), spacing=(step, step, step), origin=(-187.5, -187.5, -162.5))
    return float(build_anatomy(params, grid).liver_mask.sum()) * step**3 / 1000.0


def write_mask(mask: np.ndarray, grid: Grid, path: Path) -> None:
    """``mask`` as a uint8 NIfTI on ``grid`` (regular, axial)."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing(tuple(float(s) for s in grid.spacing[::-1]))
    image.SetOrigin(tuple(float(o) for o in grid.origin))
    image.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        sitk.WriteImage(image, str(path), True)
    except RuntimeError as err:
        raise OSError(f"cannot write mask {path}: {err}") from err


def generate_patient(out: Path, index: int, site: ImageSite, *, slices: int, size: int, seed: int,
                     case: str = "regular", noise_sd: float | None = None) -> dict[str, Any]:
    """Generate, write and describe patient ``index`` (one study, six series, one mask).

    ``case`` is the scan geometry (:data:`ctharmony.phantom.cases.CASES`); ``noise_sd`` overrides the
    site's FBP noise SD (0: noise-free images).
    """
    rng = np.random.default_rng([seed, index])
    params = sample_patient(rng)
    grid = patient_grid(params, site, slices, size, z_shift_mm=float(rng.normal(0.0, 6.0)))
    grid = case_grid(grid, case, site, np.random.default_rng([seed, index, 2]))
    anatomy = build_anatomy(params, grid)
    images = physics.render(anatomy, site, np.random.default_rng([seed, index, 1]), noise_sd=noise_sd)

    patient_id = f"PHANTOM-{index:04d}"
    study_uid = deterministic_uid(seed, index, "study")
    frame_uid = deterministic_uid(seed, index, "frame")
    day = (seed * 37 + index * 3) % 365
    date = (pd.Timestamp("2024-01-01") + pd.Timedelta(days=day)).strftime("%Y%m%d")
    age = params["age_years"]
    common = {
        "SpecificCharacterSet": "ISO_IR 100",
        "PatientName": patient_id, "PatientID": patient_id, "PatientBirthDate": None, "PatientSex": "O",
        "PatientAge": f"{int(age):03d}Y" if age >= 1 else f"{int(age * 12):03d}M",
        "PatientIdentityRemoved": "YES", "BurnedInAnnotation": "NO",
        "StudyInstanceUID": study_uid, "StudyDate": date, "StudyTime": "101500", "SeriesDate": date,
        "ContentDate": date, "AcquisitionDate": date, "ContentTime": "101600",
        "StudyID": f"{index + 1}", "AccessionNumber": None, "ReferringPhysicianName": None,
        "StudyDescription": "CT Abdomen DE portal venous (synthetic phantom)",
        "FrameOfReferenceUID": frame_uid, "PositionReferenceIndicator": None,
        "Manufacturer": site.manufacturer, "ManufacturerModelName": site.model,
        "InstitutionName": site.institution, "StationName": site.name.upper(),
        "BodyPartExamined": "ABDOMEN", "PatientPosition": "HFS", "AcquisitionNumber": 1,
        "ContrastBolusAgent": "IODINE", "SliceThickness": f"{grid.spacing[0]:.6g}",
        "SpacingBetweenSlices": f"{grid.spacing[0]:.6g}",
        "ReconstructionDiameter": f"{grid.shape[2] * grid.spacing[2]:.8g}",
    }
    if isinstance(site, TiltedSite):
        common["GantryDetectorTilt"] = f"{site.gantry_tilt_deg:.6g}"
    geometry = {} if grid.is_regular else {"positions": grid.slice_positions(), "orientation": grid.orientation()}
    row: dict[str, Any] = {"patient_id": patient_id, "study_uid": study_uid, "site": site.name,
                           "age_group": params["age_group"]}
    labels = anatomy.labels
    parenchyma = labels == LABEL["liver"]
    liver_hu = {}
    for protocol in PROTOCOLS:
        series_uid = deterministic_uid(seed, index, "series", protocol)
        tags = {**common, **protocol_tags(protocol, site.kernel), "SeriesInstanceUID": series_uid}
        write_ct_series(images[protocol], out / "dicom" / site.name / patient_id / protocol, tags=tags,
                        origin=grid.origin, spacing=grid.spacing, sop_uid_seed=f"{series_uid}|sop", **geometry)
        row[f"series_uid_{protocol}"] = series_uid
        liver_hu[protocol] = round(float(images[protocol][parenchyma].mean()), 2) if parenchyma.any() else None

    mask = anatomy.liver_mask
    mask_rel = Path("masks") / f"{study_uid}.nii.gz"
    described = {**params, "index": index, "seed": seed, "site": site.__dict__, "grid": _describe(grid)}
    if grid.is_regular:
        write_mask(mask, grid, out / mask_rel)
    else:  # the series' own slices (exact), and the anatomy evaluated on the axial grid covering them
        slices_rel = Path("masks") / f"{study_uid}{SLICE_MASK_SUFFIX}"
        save_slice_mask(SliceMask.from_grid(mask, grid), out / slices_rel)
        cover = grid.regular_cover()
        write_mask(build_anatomy(params, cover).liver_mask, cover, out / mask_rel)
        described |= {"geometry_case": case, "slice_mask_path": slices_rel.as_posix(),
                      "regular_mask_grid": _describe(cover)}
    if noise_sd is not None:
        described["noise_sd"] = noise_sd
    row["liver_volume_ml"] = float(mask.sum()) * float(np.prod(grid.spacing)) / 1000.0
    row["mask_path"] = mask_rel.as_posix()
    row["params"] = json.dumps({
        **described, "liver_total_volume_ml": round(liver_total_volume_ml(params), 1), "liver_hu_measured": liver_hu,
    }, sort_keys=True)
    return row


def _describe(grid: Grid) -> dict[str, Any]:
    """The grid as JSON: shape, spacing, origin (+ positions_mm, tilt_deg when not regular)."""
    out = {"shape": list(grid.shape), "spacing_zyx_mm": list(grid.spacing), "origin_xyz_mm": list(grid.origin)}
    if not grid.is_regular:
        out |= {"positions_mm": grid.slice_positions().tolist(), "tilt_deg": grid.tilt_deg}
    return out


def _generate_patient_star(args: tuple) -> dict[str, Any]:
    out, index, site, kwargs = args
    return generate_patient(out, index, site, **kwargs)


def generate_archive(out: Path, patients: int = 4, slices: int = 16, size: int = 128, sites: int = 2,
                     seed: int = 0, preview: bool = False, workers: int = 1,
                     geometry: GeometryCases | None = None, noise_sd: float | None = None) -> pd.DataFrame:
    """Write a multi-site, six-protocol dual-energy CT phantom archive under ``out``; return its table.

    Args:
        out: archive folder (created; existing phantom files are overwritten).
        patients: number of patients (one study each); patient ``i`` is scanned at site ``i % K``
            (K sites: ``sites``, plus ``site-tilt`` with ``geometry.tilt_site``).
        slices: slices per series (contiguous, the site's slice thickness apart).
        size: rows = columns of every image.
        sites: number of scanner sites.
        seed: generator seed (same seed, same pixels and UIDs).
        preview: also write ``preview.png`` (one slice of patient 0 in all six protocols, same window).
        workers: processes generating patients in parallel (1 = in this process).
        geometry: opt-in tilted / gapped / unevenly spaced studies (:class:`GeometryCases`); with
            ``tilt_site`` the sites are ``sites`` regular ones plus ``site-tilt``.
        noise_sd: FBP noise SD of every site instead of its own (0: noise-free images, for geometry checks).
    """
    for name, value, low in (("patients", patients, 1), ("slices", slices, 1), ("size", size, 16),
                             ("sites", sites, 1), ("workers", workers, 1)):
        if int(value) < low:
            raise ValueError(f"generate_archive: {name} must be >= {low}, got {value}")
    if noise_sd is not None and not float(noise_sd) >= 0.0:
        raise ValueError(f"generate_archive: noise_sd must be >= 0, got {noise_sd}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    geometry = geometry or GeometryCases()
    if (geometry.gap_studies and slices < 4) or (geometry.variable_spacing_studies and slices < 3):
        raise ValueError(f"generate_archive: {slices} slices are too few for a gap (>= 4) or uneven spacing (>= 3)")
    site_list = make_sites(sites, seed, tilt=geometry.tilt_site)
    cases = geometry.assign(patients, [isinstance(s, TiltedSite) for s in site_list])
    kwargs = {"slices": int(slices), "size": int(size), "seed": int(seed)}
    if noise_sd is not None:
        kwargs["noise_sd"] = float(noise_sd)
    jobs = [(out, i, site_list[i % len(site_list)], {**kwargs, "case": cases[i]}) for i in range(patients)]
    if workers > 1 and patients > 1:
        import multiprocessing
        import threading
        from concurrent.futures import ProcessPoolExecutor

        # fork is instant; spawn when this process runs other threads (e.g. inside a Ray worker)
        single = threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if single else "spawn")
        with ProcessPoolExecutor(max_workers=min(workers, patients), mp_context=context) as pool:
            rows = list(pool.map(_generate_patient_star, jobs))
    else:
        rows = [_generate_patient_star(job) for job in jobs]
    table = pd.DataFrame(rows)[COLUMNS]
    table.to_parquet(out / "phantom.parquet", index=False)
    if preview:
        from ctharmony.phantom.preview import write_preview

        write_preview(out, table.iloc[0], out / "preview.png")
    log.info("phantom archive: %d patients x %d protocols x %d slices at %dx%d in %s",
             patients, len(PROTOCOLS), slices, size, size, out)
    return table
