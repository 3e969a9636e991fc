"""Several real CT cases re-simulated into one archive (``simulate --anatomy real``, repeatable ``--real-series``).

Each real case (a series folder and its liver mask) becomes ``patients`` simulated patients, as the
benchmark's real-anatomy cohort does per case (:mod:`ctharmony.benchmark.plan`): copy 0 is the case as
it is, copies 1, 2, ... are augmented (:func:`~ctharmony.simulate.studies.simulate_real_patient`), copy
``j`` at site ``j % len(sites)``. Case ``c`` draws with seed ``seed + CASE_SEED_STEP * c``, so case 0 of a
multi-case archive is pixel for pixel the single-case archive of the same seed, and case ``c`` at seed
``s`` is the benchmark's real subset ``c`` at ``s = plan.seed + 2000``.

The archive is the phantom's layout (``dicom/``, ``masks/<StudyInstanceUID>.nii.gz``, ``truth/``,
``phantom.parquet``): catalog it and train on it unchanged. ``phantom.parquet`` gains two columns, the
simulated patient's origin: ``real_case`` (the case's name: its series folder's name) and ``real_copy``
(0: as it is). Splits that must keep a real patient on one side group by ``real_case``
(:mod:`ctharmony.train.segmenter_data` does). Patient IDs: ``SIMULATED-REAL-<jjjj>`` for one case (as
before), ``SIMULATED-REAL-<cc>-<jjjj>`` for several.

Example::

    cases = [(Path("data/real/siemens-abdomen-ct"), Path("data/real/siemens-abdomen-ct-liver.nii.gz")),
             (Path("data/real/ts-example-ct"), Path("data/real/ts-example-ct-liver.nii.gz"))]
    table = simulate_real_cases(Path("/tmp/real"), cases, patients=3, slices=8, size=128, sites=sites)
    table.groupby("real_case").size()  # 3 simulated patients per real case
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)
CASE_SEED_STEP = 100  # seed of case c: seed + 100 c (the benchmark's real subsets are 100 apart)
ORIGIN_COLUMNS = ["real_case", "real_copy"]


def case_name(series: Path) -> str:
    """The name a real case goes by: its series folder's name (the benchmark's ``real-<name>`` subsets)."""
    return Path(series).resolve().name


def check_cases(cases: Sequence[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
    """``cases`` as paths, checked: each series a folder, each mask a file, names unique; errors name the path."""
    checked = []
    for series, mask in cases:
        series, mask = Path(series), Path(mask)
        if not series.is_dir():
            raise ValueError(f"real series {series}: not a folder of DICOM files")
        if not mask.is_file():
            raise ValueError(f"real liver mask {mask}: no such file (the mask of {series})")
        checked.append((series, mask))
    names = [case_name(s) for s, _ in checked]
    doubles = sorted({n for n in names if names.count(n) > 1})
    if doubles:
        raise ValueError(f"real cases: two series folders share the name {', '.join(doubles)}; "
                         "a case is known by its folder's name")
    return checked


def simulate_real_cases(out: Path, cases: Sequence[tuple[Path, Path]], *, patients: int, slices: int, size: int,
                        sites: Sequence[Any], seed: int, backend: str = "svmbir",
                        series: Sequence[str] | None = None, augment: bool | None = None) -> pd.DataFrame:
    """Write ``patients`` simulated patients per real case under ``out``; return the table (with its origins).

    ``sites`` are loaded :class:`~ctharmony.scanmodel.sites.ProjectionSite`; ``augment`` False: every copy as it is.
    """
    from ctharmony.phantom.generate import COLUMNS
    from ctharmony.simulate.real import load_real
    from ctharmony.simulate.studies import simulate_real_patient

    checked = check_cases(cases)
    sources = [load_real(s, m, slices) for s, m in checked]  # every case read before any is written
    rows = []
    for c, ((series_dir, _), source) in enumerate(zip(checked, sources, strict=True)):
        name = case_name(series_dir)
        for j in range(patients):
            pid = f"SIMULATED-REAL-{j:04d}" if len(checked) == 1 else f"SIMULATED-REAL-{c:02d}-{j:04d}"
            row = simulate_real_patient(out, j, sites[j % len(sites)], source, size=size,
                                        seed=seed + CASE_SEED_STEP * c, backend=backend, series=series,
                                        augment=augment is None or augment, patient_id=pid, case=name)
            rows.append({**row, "real_case": name, "real_copy": j})
        log.info("real case %s: %d simulated patients", name, patients)
    return pd.DataFrame(rows)[[*COLUMNS, *ORIGIN_COLUMNS]]


def cases_from_catalog(catalog: Path, masks: Path) -> list[tuple[Path, Path]]:
    """Real cases of a catalogued archive: per study with ``<masks>/<StudyInstanceUID>.nii.gz``, its ok series
    with the most slices (ties: the first series key), as (series folder, mask).

    The folder must hold that series' files only (the simulator reads a folder); errors name the series.
    """
    from ctharmony.archive import read_catalog

    masks = Path(masks)
    if not masks.is_dir():
        raise ValueError(f"real masks {masks}: no such folder")
    best: dict[str, Any] = {}
    for row in read_catalog(catalog).series():
        if row.status != "ok" or not (masks / f"{row.study_uid}.nii.gz").is_file():
            continue
        held = best.get(row.study_uid)
        if held is None or (row.slices, held.series_key) > (held.slices, row.series_key):
            best[row.study_uid] = row
    if not best:
        raise ValueError(f"real catalog {catalog}: no ok series whose study has a mask in {masks}")
    cases = []
    for study, row in sorted(best.items()):
        folders = {Path(f).parent for f in row.files}
        folder = folders.pop()
        if folders or len([p for p in folder.iterdir() if p.is_file()]) != len(row.files):
            raise ValueError(f"real catalog {catalog}: series {row.series_key}: its files must be the only files "
                             "of one folder to be re-simulated")
        cases.append((folder, masks / f"{study}.nii.gz"))
    return cases


def origins(table: pd.DataFrame) -> dict[str, str]:
    """Study UID -> real case of a simulated archive's table (empty for phantom anatomy)."""
    if "real_case" not in table.columns:
        return {}
    return {str(u): str(c) for u, c in zip(table["study_uid"], table["real_case"], strict=True) if c}
