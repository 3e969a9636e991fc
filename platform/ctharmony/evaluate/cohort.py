"""Cohort tables from conversion results: per exam, protocol and method, then per protocol and method.

Input: one or more ``results.parquet`` files of the conversion contract. Every converted series gives
an ``original`` mask (the segmenter on the input) and a converted one, reported under its method:
``harmonized`` for the GAN, or the baseline's name for models named ``baseline-...``
(``ctharmony.baselines``). The reference of an exam is the mask on its ORIGINAL reference
protocol series (M80), as in the paper; true masks (``<truth>/<StudyInstanceUID>.nii.gz``) are a
second reference when given, and with them every series' image quality is measured
(:mod:`.image_quality`: noise, NPS, edge width; MAE and SSIM against the noise-free T80 of
``truth_images``), summarized per protocol and method with ratios to the original reference protocol.
Radiomic features of every readable series in the exam's reference liver, and their reproducibility
(Lin's CCC per feature against the reference protocol and the noise-free T80), come from
:mod:`.reproducibility`.
Exams are labelled ``exam-001``... in StudyInstanceUID order and carry only the pseudonymous
``patient_key``: no UID, name or ID leaves this module.

Example::

    cohort = build_cohort(["OUT/results.parquet"], reference_protocol="M80")
    cohort.summary.query("method == 'harmonized'")[["protocol", "dice_mean"]]
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ctharmony.archive.protocols import PAPER_PROTOCOLS
from ctharmony.evaluate import image_quality, metrics, reproducibility, stats
from ctharmony.evaluate.naming import BASELINE_PREFIX, HARMONIZED, ORIGINAL, method_of

log = logging.getLogger(__name__)

__all__ = ["HARMONIZED", "ORIGINAL", "Cohort", "ResultsError", "build_cohort", "method_of", "summarize"]
QUALITY_METRICS = image_quality.COLUMNS
SEGMENTATION_METRICS = ("dice", "abs_volume_diff_ml", "abs_volume_ratio_pct", "dice_truth")
RATIOS = {"noise_sd_ratio_ref": "noise_sd_hu", "nps_peak_ratio_ref": "nps_peak_lp_mm"}  # / original reference's
REQUIRED = ("series_key", "study_uid", "patient_key", "site", "protocol", "model_name", "model_version",
            "mask_original_path", "mask_harmonized_path", "status")


class ResultsError(ValueError):
    """A results file is unreadable or lacks the columns of the conversion contract."""


@dataclasses.dataclass
class Cohort:
    """Per-exam rows (``exams``), per protocol/method summary, per-site summary and provenance."""

    exams: pd.DataFrame
    summary: pd.DataFrame
    site_summary: pd.DataFrame | None
    reference_protocol: str
    methods: list[str]
    protocols: list[str]
    model_uris: dict[str, str]
    failed_series: int
    has_truth: bool
    sources: pd.DataFrame = dataclasses.field(repr=False, default_factory=pd.DataFrame)
    """Mask paths and output folders per (exam, protocol, method): for figures, never written out."""
    has_image_quality: bool = False
    """Whether any series got image-quality figures (true masks given and its image readable)."""
    radiomics: pd.DataFrame = dataclasses.field(repr=False, default_factory=pd.DataFrame)
    """Radiomic features per exam, protocol and method (and ``T80`` / ``noise-free`` rows with truth images)."""
    radiomics_ccc: pd.DataFrame = dataclasses.field(repr=False, default_factory=pd.DataFrame)
    """Lin's CCC per protocol, method and feature against the reference and the noise-free T80."""

    @property
    def has_radiomics(self) -> bool:
        """Whether any feature has a CCC against the reference or the truth."""
        ccc = self.radiomics_ccc
        return not ccc.empty and bool(ccc[["ccc", "ccc_truth"]].notna().any().any())


def load_results(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Concatenate results files; relative mask paths and output folders are resolved beside each file."""
    frames = []
    for path in map(Path, paths):
        try:
            frame = pd.read_parquet(path)
        except (OSError, ValueError) as err:
            raise ResultsError(f"cannot read results file {path}: {err}") from err
        missing = [c for c in REQUIRED if c not in frame.columns]
        if missing:
            raise ResultsError(f"results file {path} lacks column(s) {', '.join(missing)}")
        for column in ("mask_original_path", "mask_harmonized_path", "output_dir"):
            if column in frame.columns:
                frame[column] = [_resolve(v, path.parent) for v in frame[column]]
        frames.append(frame)
    if not frames:
        raise ResultsError("no results file given")
    return pd.concat(frames, ignore_index=True)


def _resolve(value: object, base: Path) -> str:
    if not isinstance(value, str) or not value:
        return ""
    p = Path(value)
    return str(p if p.is_absolute() else base / p)


def mask_table(results: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """One row per (series, method) with its mask path; plus each method's model URI."""
    done = results[results["status"] == "done"]
    harmonizers = sorted({n for n in done["model_name"] if not str(n).startswith(BASELINE_PREFIX)})
    rows, uris = [], {}
    keys = ["series_key", "study_uid", "patient_key", "site", "protocol"]
    for record in done.to_dict("records"):
        method = str(record.get("method") or "") or method_of(str(record["model_name"]), harmonizers)
        output_dir = record.get("output_dir", "") or ""
        base = {k: record[k] for k in keys} | {"output_dir": output_dir}
        if record["mask_original_path"]:  # absent when converted with --no-original-mask
            rows.append(base | {"method": ORIGINAL, "mask_path": record["mask_original_path"]})
        rows.append(base | {"method": method, "mask_path": record["mask_harmonized_path"]})
        uris[method] = f"models:/{record['model_name']}/{record['model_version']}"
        if record.get("segmenter_name"):
            uris["segmenter"] = f"models:/{record['segmenter_name']}/{record.get('segmenter_version', '')}"
    table = pd.DataFrame(rows, columns=[*keys, "output_dir", "method", "mask_path"])
    missing = ~table["mask_path"].astype(bool)
    if missing.any():
        log.warning("%d converted series have no mask file; they are left out", int(missing.sum()))
    table = table[~missing].drop_duplicates(["series_key", "method"]).sort_values("series_key", kind="stable")
    repeated = table.duplicated(["study_uid", "protocol", "method"])
    if repeated.any():  # e.g. a split series ("<uid>.2"): one series per exam and protocol is compared
        log.warning("%d series share an exam and protocol with another one; the first by key is used",
                    int(repeated.sum()))
    return table[~repeated].reset_index(drop=True), uris


def exam_table(masks: pd.DataFrame, reference_protocol: str = "M80", truth: Path | None = None,
               quality: Callable[[dict, np.ndarray, str], dict] | None = None,
               radiomics: Callable[[dict, np.ndarray, str], None] | None = None) -> pd.DataFrame:
    """Per (exam, protocol, method): Dice and volumes against the reference (and the truth when given).

    ``quality(record, true_mask, exam)`` (e.g. :class:`.image_quality.SeriesQuality`) adds the image-quality
    columns of rows that have a true mask; they are NaN otherwise. ``radiomics(record, reference_mask, exam)``
    (e.g. :class:`.reproducibility.SeriesRadiomics`) is called for every row of an exam with a reference.
    """
    studies = sorted(masks["study_uid"].unique())
    exam_label = {uid: f"exam-{i + 1:03d}" for i, uid in enumerate(studies)}
    out = []
    for study, rows in masks.groupby("study_uid", sort=True):
        ref_rows = rows[(rows["protocol"] == reference_protocol) & (rows["method"] == ORIGINAL)]
        reference = metrics.load_mask(ref_rows.iloc[0]["mask_path"]) if len(ref_rows) else None
        if reference is None:
            log.warning("%s has no original %s series: no reference for it", exam_label[study], reference_protocol)
        truth_path = (Path(truth) / f"{study}.nii.gz") if truth is not None else None
        if truth_path is not None and not truth_path.is_file():
            log.warning("%s: no true mask file in %s", exam_label[study], truth)
            truth_path = None
        truths: dict[tuple, np.ndarray] = {}
        for record in rows.to_dict("records"):
            mask = metrics.load_mask(record["mask_path"])
            row = {"exam": exam_label[study], "patient_key": record["patient_key"], "site": record["site"],
                   "protocol": record["protocol"], "method": record["method"], "volume_ml": mask.volume_ml}
            is_reference = record["protocol"] == reference_protocol and record["method"] == ORIGINAL
            if reference is not None and not is_reference:
                _check_shapes(mask, reference, record["mask_path"])
                row["dice"] = metrics.dice(mask.mask, reference.mask)
                row["reference_volume_ml"] = reference.volume_ml
                diff, ratio = metrics.volume_difference(mask.volume_ml, reference.volume_ml)
                row |= {"volume_diff_ml": diff, "volume_ratio_pct": ratio}
            if truth_path is not None:
                origin, direction = _geometry(mask, record["output_dir"])
                positions = mask.positions
                grid = (mask.mask.shape, mask.spacing, origin, None if direction is None else direction.tobytes(),
                        None if positions is None else positions.tobytes())
                if grid not in truths:  # the series of a study share one grid: resample the truth once
                    truths[grid] = metrics.truth_on_grid(truth_path, mask.mask.shape, mask.spacing, origin, direction,
                                                         positions)
                true_mask = truths[grid]
                true_volume = metrics.mask_volume_ml(true_mask, mask.spacing, direction, positions)
                row |= {"dice_truth": metrics.dice(mask.mask, true_mask), "truth_volume_ml": true_volume}
                if quality is not None:
                    row |= quality(record, true_mask, exam_label[study])
            if radiomics is not None and reference is not None and mask.mask.shape == reference.mask.shape:
                radiomics(record, reference.mask, exam_label[study])
            out.append(row)
    columns = ["exam", "patient_key", "site", "protocol", "method", "volume_ml", "dice", "reference_volume_ml",
               "volume_diff_ml", "volume_ratio_pct", "dice_truth", "truth_volume_ml", *QUALITY_METRICS,
               "nps_patch_px"]
    table = pd.DataFrame(out).reindex(columns=columns)
    table["abs_volume_diff_ml"] = table["volume_diff_ml"].abs()
    table["abs_volume_ratio_pct"] = table["volume_ratio_pct"].abs()
    return table.sort_values(["exam", "protocol", "method"]).reset_index(drop=True)


def _check_shapes(mask: metrics.MaskFile, reference: metrics.MaskFile, path: str) -> None:
    if mask.mask.shape != reference.mask.shape:
        raise metrics.MaskFileError(f"mask {path} has shape {mask.mask.shape}, its exam's reference "
                                    f"{reference.mask.shape}: the series of one exam must share geometry")


def _geometry(mask: metrics.MaskFile, output_dir: str) -> tuple:
    """The mask's origin and direction: stored in the mask file, or (older files) those of its converted series."""
    if mask.origin is not None and mask.direction is not None:
        return mask.origin, mask.direction
    if output_dir and Path(output_dir).is_dir():
        return _dicom_geometry(output_dir)
    return None, None


@functools.lru_cache(maxsize=256)
def _dicom_geometry(folder: str) -> tuple:
    from ctharmony.archive.reader import SeriesReadError, read_geometry

    try:
        positions, direction = read_geometry(sorted(Path(folder).glob("*.dcm")))
    except SeriesReadError as err:
        raise metrics.MaskFileError(f"{folder}: the converted series' geometry cannot be read ({err})") from err
    return tuple(float(v) for v in positions[0]), direction


def summarize(exams: pd.DataFrame, by: Sequence[str] = ("protocol",), reference_protocol: str = "M80") -> pd.DataFrame:
    """Per group and method: mean ± SD, paired t-test vs ``original``, CCC with CI, Bland-Altman, image quality.

    ``noise_sd_ratio_ref`` and ``nps_peak_ratio_ref`` divide the mean noise SD and NPS peak by those of the
    original ``reference_protocol`` series (of the same site when ``by`` holds ``site``).
    """
    exams = exams.reindex(columns=list(dict.fromkeys([*exams.columns, *QUALITY_METRICS])))
    out = []
    for key, group in exams.groupby(list(by), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        original = group[group["method"] == ORIGINAL].set_index("exam")
        for method, rows in group.groupby("method", sort=False):
            rows = rows.set_index("exam")
            row = dict(zip(by, key, strict=True)) | {"method": method, "n": int(rows["dice"].notna().sum())}
            for metric in (*SEGMENTATION_METRICS, *QUALITY_METRICS):
                mean, sd, count = stats.mean_sd(rows[metric])
                row |= {f"{metric}_mean": mean, f"{metric}_sd": sd, f"{metric}_n": count, f"{metric}_p": np.nan}
                if method != ORIGINAL and not original.empty:
                    paired = rows[[metric]].join(original[[metric]], rsuffix="_orig", how="inner")
                    row[f"{metric}_p"] = stats.paired_ttest(paired[metric], paired[f"{metric}_orig"]).pvalue
            ccc = stats.lins_ccc(rows["volume_ml"], rows["reference_volume_ml"])
            ba = stats.bland_altman(rows["volume_ml"], rows["reference_volume_ml"],
                                    percent_of=rows["reference_volume_ml"])
            truth_ccc = stats.lins_ccc(rows["volume_ml"], rows["truth_volume_ml"])
            row |= {"ccc": ccc.ccc, "ccc_low": ccc.ci_low, "ccc_high": ccc.ci_high,
                    "ba_mean_pct": ba.mean_difference, "ba_loa_low_pct": ba.loa_low,
                    "ba_loa_high_pct": ba.loa_high, "ccc_truth": truth_ccc.ccc,
                    "ccc_truth_low": truth_ccc.ci_low, "ccc_truth_high": truth_ccc.ci_high}
            out.append(row)
    return _reference_ratios(pd.DataFrame(out), [k for k in by if k != "protocol"], reference_protocol)


def _reference_ratios(summary: pd.DataFrame, keys: list[str], reference_protocol: str) -> pd.DataFrame:
    """Add each ``RATIOS`` column: the row's mean over the original reference protocol's mean (NaN without one)."""
    for ratio in RATIOS:
        summary[ratio] = np.nan
    if summary.empty:
        return summary
    columns = [f"{metric}_mean" for metric in RATIOS.values()]
    on = keys or ["_all"]
    reference = summary[(summary["protocol"] == reference_protocol) & (summary["method"] == ORIGINAL)]
    base = summary.assign(_all=0)[on].merge(reference.assign(_all=0)[on + columns].drop_duplicates(on), on=on,
                                            how="left")
    for ratio, metric in RATIOS.items():
        with np.errstate(divide="ignore", invalid="ignore"):
            values = summary[f"{metric}_mean"].to_numpy(float) / base[f"{metric}_mean"].to_numpy(float)
        summary[ratio] = np.where(np.isfinite(values), values, np.nan)
    return summary


def order_protocols(protocols: Sequence[str]) -> list[str]:
    """The paper's protocols in its order, then any others alphabetically."""
    present = set(protocols)
    return [p for p in PAPER_PROTOCOLS if p in present] + sorted(present - set(PAPER_PROTOCOLS))


def order_methods(methods: Sequence[str]) -> list[str]:
    """``original``, ``harmonized``, then the others (baselines) alphabetically."""
    present = set(methods)
    return [m for m in (ORIGINAL, HARMONIZED) if m in present] + sorted(present - {ORIGINAL, HARMONIZED})


def build_cohort(results: Sequence[str | Path], reference_protocol: str = "M80", truth: str | Path | None = None,
                 truth_images: str | Path | None = None, catalog: str | Path | None = None,
                 radiomics: bool = True) -> Cohort:
    """Everything the report and MLflow need, from results files (and true masks, noise-free truth images).

    Series images are read from ``catalog``'s files for originals (default: a ``catalog.parquet`` beside
    the results) and from their ``output_dir`` for converted ones. With ``truth``, each series' image quality
    is measured; ``truth_images`` (``<StudyInstanceUID>/T80.npz``) adds MAE / SSIM to T80 and truth-based
    noise, and the noise-free reference of the radiomics. ``radiomics=False`` skips the features (and, without
    ``truth``, reads no image).
    """
    if truth is not None and not Path(truth).is_dir():
        raise ResultsError(f"true-mask folder {truth} does not exist")
    if truth_images is not None and not Path(truth_images).is_dir():
        raise ResultsError(f"truth-image folder {truth_images} does not exist")
    table = load_results(results)
    masks, uris = mask_table(table)
    if masks.empty:
        raise ResultsError(f"no converted series with status 'done' in {', '.join(map(str, results))}")
    quality, features, images = None, None, None
    if truth is not None or radiomics:
        catalog = catalog if catalog is not None else image_quality.find_catalog(results)
        images = image_quality.SeriesImages(image_quality.series_files(catalog), truth_images)
        quality = image_quality.SeriesQuality(images, reference_protocol) if truth is not None else None
        features = reproducibility.SeriesRadiomics(images) if radiomics else None
    exams = exam_table(masks, reference_protocol, Path(truth) if truth is not None else None, quality, features)
    if images is not None and images.unreadable:
        log.warning("%d series have no readable image (originals need a catalog); their image-quality and "
                    "radiomics columns are NaN", images.unreadable)
    labels = {uid: f"exam-{i + 1:03d}" for i, uid in enumerate(sorted(masks["study_uid"].unique()))}
    sources = masks.assign(exam=masks["study_uid"].map(labels))[
        ["exam", "series_key", "protocol", "method", "mask_path", "output_dir"]]
    feature_table = features.table() if features is not None else pd.DataFrame()
    ccc = reproducibility.feature_ccc(feature_table, reference_protocol)
    summary = summarize(exams, ("protocol",), reference_protocol).merge(
        reproducibility.summarize(ccc), on=["protocol", "method"], how="left")
    sites = sorted(exams["site"].dropna().unique())
    site_summary = summarize(exams, ("site", "protocol"), reference_protocol) if len(sites) > 1 else None
    return Cohort(
        exams=exams, summary=summary, site_summary=site_summary, reference_protocol=reference_protocol,
        methods=order_methods(exams["method"].unique()), protocols=order_protocols(exams["protocol"].unique()),
        model_uris=uris, failed_series=int((table["status"] != "done").sum()),
        has_truth=bool(exams["dice_truth"].notna().any()), sources=sources,
        has_image_quality=bool(exams[list(QUALITY_METRICS)].notna().any().any()),
        radiomics=feature_table, radiomics_ccc=ccc,
    )
