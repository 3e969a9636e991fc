"""``ctharmony simulate``: a projection-domain simulated archive in the phantom archive's layout.

Layout (as :mod:`ctharmony.phantom.archive`, plus the truth images)::

    OUT/dicom/<site>/<patient>/<series>/<nnnn>.dcm   FBP, IR, M40, M60, M80, OPT (the six protocols),
                                                     FBP_soft, FBP_sharp, IR_<level> (other kernels, strengths)
    OUT/masks/<StudyInstanceUID>.nii.gz              true liver mask (uint8)
    OUT/truth/<StudyInstanceUID>/T40.npz ...         noise-free mono 40 / 60 / 80 keV images (``hu``, float32)
    OUT/phantom.parquet                              one row per patient (the phantom's columns)

Patient ``i`` is drawn with ``numpy.random.default_rng([seed, i])`` (the phantom's anatomy), scanned at
site ``i % len(sites)``; ``params`` (JSON) names the simulator, the site and the measured liver HU.

Example (what ``ctharmony simulate`` runs; tests/simulate/test_simulate_archive.py runs a small one)::

    table = simulate_archive(Path("/tmp/sim"), patients=2, slices=4, size=128)
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ctharmony.archive.protocols import PAPER_PROTOCOLS as PROTOCOLS
from ctharmony.phantom.anatomy import sample_patient
from ctharmony.phantom.archive import COLUMNS, patient_grid
from ctharmony.phantom.dicom_writer import deterministic_uid, protocol_tags, write_ct_series
from ctharmony.simulate.anatomy import phantom_maps
from ctharmony.simulate.scan import Scanner
from ctharmony.simulate.sites import SimSite, load_site

log = logging.getLogger(__name__)
TRUTH = ("T40", "T60", "T80")


def series_tags(site: SimSite, name: str, thickness_mm: float) -> dict[str, Any]:
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


def _write_mask(mask: np.ndarray, spacing: Sequence[float], origin: Sequence[float], path: Path) -> None:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing(tuple(float(s) for s in spacing[::-1]))
    image.SetOrigin(tuple(float(o) for o in origin))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        sitk.WriteImage(image, str(path), True)
    except RuntimeError as err:
        raise OSError(f"cannot write mask {path}: {err}") from err


def simulate_patient(out: Path, index: int, site: SimSite, *, slices: int, size: int, seed: int,
                     backend: str = "svmbir") -> dict[str, Any]:
    """Simulate, write and describe patient ``index`` (one study: every series of the site, mask, truth)."""
    rng = np.random.default_rng([seed, index])
    params = sample_patient(rng)
    grid = patient_grid(params, site, slices, size, z_shift_mm=float(rng.normal(0.0, 6.0)))
    maps = phantom_maps(params, grid)
    scanner = Scanner(site, size, backend=backend, fov_mm=grid.spacing[2] * size)
    images = scanner.reconstruct(scanner.project(maps), maps, np.random.default_rng([seed, index, 1]))
    patient_id = f"SIMULATED-{index:04d}"
    study_uid = deterministic_uid("simulate", seed, index, "study")
    common = {
        "PatientName": patient_id, "PatientID": patient_id, "PatientBirthDate": None, "PatientSex": "O",
        "PatientIdentityRemoved": "YES", "BurnedInAnnotation": "NO", "StudyInstanceUID": study_uid,
        "StudyDate": "20240101", "StudyTime": "101500", "StudyID": f"{index + 1}", "AccessionNumber": None,
        "ReferringPhysicianName": None, "StudyDescription": "CT Abdomen DE portal venous (projection simulation)",
        "FrameOfReferenceUID": deterministic_uid("simulate", seed, index, "frame"), "PositionReferenceIndicator": None,
        "Manufacturer": site.manufacturer, "ManufacturerModelName": site.model, "InstitutionName": site.institution,
        "StationName": site.name.upper(), "BodyPartExamined": "ABDOMEN", "PatientPosition": "HFS",
        "ContrastBolusAgent": "IODINE", "SliceThickness": f"{grid.spacing[0]:.6g}",
        "SpacingBetweenSlices": f"{grid.spacing[0]:.6g}", "ReconstructionDiameter": f"{size * grid.spacing[2]:.8g}",
    }
    names = [*PROTOCOLS, "FBP_soft", "FBP_sharp", *(f"IR_{lv}" for lv in site.ir.strengths
                                                    if lv != site.ir.archive_strength)]
    row: dict[str, Any] = {"patient_id": patient_id, "study_uid": study_uid, "site": site.name,
                           "age_group": params["age_group"]}
    parenchyma = phantom_parenchyma(maps)
    liver_hu = {}
    for name in names:
        series_uid = deterministic_uid("simulate", seed, index, "series", name)
        tags = {**common, **series_tags(site, name, grid.spacing[0]), "SeriesInstanceUID": series_uid}
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
    _write_mask(maps.liver, grid.spacing, grid.origin, out / mask_rel)
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
                     backend: str = "svmbir") -> pd.DataFrame:
    """Write a simulated multi-site archive under ``out`` (layout in the module docstring); return its table.

    Args:
        out: archive folder (created).
        patients: number of patients (one study each); patient ``i`` at site ``i % len(sites)``.
        slices: slices per series; size: rows = columns.
        sites: packaged site names or site YAML paths.
        seed: generator seed (same seed, same pixels and UIDs).
        backend: projector backend (``svmbir`` or ``skimage``).
    """
    for name, value, low in (("patients", patients, 1), ("slices", slices, 1), ("size", size, 32)):
        if int(value) < low:
            raise ValueError(f"simulate_archive: {name} must be >= {low}, got {value}")
    site_list = [load_site(s) for s in sites]
    if not site_list:
        raise ValueError("simulate_archive: at least one site is needed")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = [simulate_patient(out, i, site_list[i % len(site_list)], slices=slices, size=size, seed=seed,
                             backend=backend) for i in range(patients)]
    table = pd.DataFrame(rows)[COLUMNS]
    table.to_parquet(out / "phantom.parquet", index=False)
    log.info("simulated archive: %d patients x %d slices at %dx%d in %.1f s (%s)", patients, slices, size, size,
             time.perf_counter() - start, out)
    return table

