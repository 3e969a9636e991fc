"""The cohort report: the paper's Tables 2-4, image quality, radiomics reproducibility, Bland-Altman plots and
example slices (Markdown, HTML).

The HTML page is self-contained (figures embedded as base64 PNG); the Markdown links the PNG files
written beside it under ``plots/``. Only exam labels and pseudonymous patient keys appear (in
``exams.csv``); the tables are per protocol and method.

Example::

    files = write_report(cohort, Path("report"))
    print(headline(cohort))
"""

from __future__ import annotations

import base64
import dataclasses
import html
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ctharmony.evaluate import plots, radiomics, reproducibility
from ctharmony.evaluate.cohort import ORIGINAL, Cohort

DASH = "—"


@dataclasses.dataclass
class Table:
    """A rendered table: title, header cells and rows of text cells."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.headers) + " |",
                 "|" + "|".join("---" for _ in self.headers) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines + (["", f"_{self.note}_"] if self.note else []))

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.headers)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self.rows)
        note = f"<p class='note'>{html.escape(self.note)}</p>" if self.note else ""
        return f"<h3>{html.escape(self.title)}</h3><table><tr>{head}</tr>{body}</table>{note}"


@dataclasses.dataclass
class ReportFiles:
    """What :func:`write_report` wrote."""

    folder: Path
    markdown: Path
    html: Path
    plots: list[Path]
    tables: list[Path]


def method_label(method: str) -> str:
    return {"original": "Original", "harmonized": "Harmonized (GAN)"}.get(method, method.replace("-", " ").capitalize())


def fmt_mean_sd(mean: float, sd: float, scale: float = 1.0, digits: int = 2) -> str:
    if not math.isfinite(mean):
        return DASH
    sd_text = f"{sd * scale:.{digits}f}" if math.isfinite(sd) else DASH
    return f"{mean * scale:.{digits}f} ± {sd_text}"


def fmt_p(p: float) -> str:
    if not math.isfinite(p):
        return DASH
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def fmt_ci(value: float, low: float, high: float, digits: int = 3) -> str:
    if not math.isfinite(value):
        return DASH
    interval = f" ({low:.{digits}f}, {high:.{digits}f})" if math.isfinite(low) and math.isfinite(high) else ""
    return f"{value:.{digits}f}{interval}"


def _lookup(summary: pd.DataFrame, keys: dict[str, str]) -> pd.Series | None:
    mask = np.ones(len(summary), bool)
    for column, value in keys.items():
        mask &= (summary[column] == value).to_numpy()
    return summary[mask].iloc[0] if mask.any() else None


def comparison_table(cohort: Cohort, metric: str, title: str, scale: float = 1.0, digits: int = 2,
                     truth: bool = False) -> Table:
    """Paper-style table: per protocol, mean ± SD of each method and the paired-t P against original."""
    headers, rows = ["Protocol", "n"], []
    for method in cohort.methods:
        headers += [method_label(method)] + ([] if method == ORIGINAL else ["P"])
    for protocol in cohort.protocols:
        cells, n = [], 0
        for method in cohort.methods:
            row = _lookup(cohort.summary, {"protocol": protocol, "method": method})
            is_reference = protocol == cohort.reference_protocol and method == ORIGINAL and not truth
            if row is None or is_reference:
                cells += ["reference" if is_reference else DASH] + ([] if method == ORIGINAL else [DASH])
                continue
            n = max(n, int(row[f"{metric}_n"]))
            cells.append(fmt_mean_sd(row[f"{metric}_mean"], row[f"{metric}_sd"], scale, digits))
            if method != ORIGINAL:
                cells.append(fmt_p(row[f"{metric}_p"]))
        rows.append([protocol, str(n)] + cells)
    note = "mean ± SD over exams; P: two-sided paired t-test against the original images."
    return Table(title, headers, rows, note)


def _protocol_by_method(cohort: Cohort, cell: Callable[[str, str, Any], str]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of a protocol x method table; ``cell(protocol, method, summary_row_or_None)``."""
    headers = ["Protocol"] + [method_label(m) for m in cohort.methods]
    rows = [
        [protocol] + [
            cell(protocol, method, _lookup(cohort.summary, {"protocol": protocol, "method": method}))
            for method in cohort.methods
        ]
        for protocol in cohort.protocols
    ]
    return headers, rows


def ccc_table(cohort: Cohort, truth: bool = False) -> Table:
    """Table 4: Lin's CCC of liver volumes with its 95 % CI, per protocol and method."""
    prefix = "ccc_truth" if truth else "ccc"

    def cell(protocol: str, method: str, row: Any) -> str:
        if not truth and protocol == cohort.reference_protocol and method == ORIGINAL:
            return "reference"
        return DASH if row is None else fmt_ci(row[prefix], row[f"{prefix}_low"], row[f"{prefix}_high"])

    headers, rows = _protocol_by_method(cohort, cell)
    against = "true liver volume" if truth else f"volume on original {cohort.reference_protocol}"
    title = f"Table 4{'b' if truth else ''}. Volume CCC against the {against} (95% CI)"
    return Table(title, headers, rows, "Lin's concordance correlation coefficient; CI on Fisher's z (Lin 1989).")


def bland_altman_table(cohort: Cohort) -> Table:
    def cell(protocol: str, method: str, row: Any) -> str:
        if row is None or not math.isfinite(row["ba_mean_pct"]):
            return DASH
        return f"{row['ba_mean_pct']:.1f}% ({row['ba_loa_low_pct']:.1f}, {row['ba_loa_high_pct']:.1f})"

    headers, rows = _protocol_by_method(cohort, cell)
    return Table("Bland-Altman: volume difference ratio, mean difference (95% limits of agreement)",
                 headers, rows, "difference = 100 × (volume − reference volume) / reference volume.")


def site_table(cohort: Cohort) -> Table | None:
    if cohort.site_summary is None:
        return None
    headers = ["Site", "Protocol", "n"] + [f"Dice {method_label(m)}" for m in cohort.methods]
    rows = []
    for (site, protocol), group in cohort.site_summary.groupby(["site", "protocol"], sort=True):
        cells = [str(site), str(protocol), str(int(group["n"].max()))]
        for method in cohort.methods:
            row = _lookup(group, {"method": method})
            cells.append(DASH if row is None else fmt_mean_sd(row["dice_mean"], row["dice_sd"], 100.0))
        rows.append(cells)
    return Table("Per-site Dice (%) against the reference", headers, rows)


def paper_tables(cohort: Cohort) -> list[Table]:
    ref = cohort.reference_protocol
    tables = [
        comparison_table(cohort, "dice", f"Table 2. Dice (%) against the mask on original {ref}", scale=100.0),
        comparison_table(cohort, "abs_volume_diff_ml", "Table 3a. Absolute liver volume difference (mL)", digits=1),
        comparison_table(cohort, "abs_volume_ratio_pct", "Table 3b. Volume difference ratio (% of reference)",
                         digits=1),
        ccc_table(cohort),
        bland_altman_table(cohort),
    ]
    if cohort.has_truth:
        tables += [comparison_table(cohort, "dice_truth", "Table 2b. Dice (%) against the true masks",
                                    scale=100.0, truth=True), ccc_table(cohort, truth=True)]
    if cohort.has_image_quality:
        tables.append(image_quality_table(cohort))
    if cohort.has_radiomics:
        tables.append(radiomics_table(cohort))
        if cohort.radiomics_ccc["ccc_truth"].notna().any():
            tables.append(radiomics_table(cohort, truth=True))
    site = site_table(cohort)
    return tables + ([site] if site is not None else [])


QUALITY_NOTE = (
    "Noise SD: SD (HU) in the true liver eroded 6 mm in-plane without vessels, of the image minus the noise-free "
    "truth of its energy (T80 for converted series and original M80) when truth images are given, otherwise of the "
    "image itself; ratio: over the original {ref}'s mean. NPS peak / mean: peak and mean frequency (lp/mm) of the "
    "radial noise power spectrum of that noise, from square patches inside the true liver. Edge 10-90: rise "
    "distance (mm) of the edge spread function across the true liver boundary (smaller is sharper). MAE / SSIM to "
    "T80: mean absolute difference (HU) and SSIM (window W400 L40) against the noise-free 80 keV image within the "
    "body. Mean ± SD over exams.")


def image_quality_table(cohort: Cohort) -> Table:
    """Noise, noise texture, sharpness and agreement with the noise-free T80, one row per protocol and method."""
    headers = ["Protocol", "Method", "n", "Noise SD (HU)", "Noise / ref", "NPS peak (lp/mm)", "NPS peak / ref",
               "NPS mean (lp/mm)", "Edge 10-90 (mm)", "MAE to T80 (HU)", "SSIM to T80"]
    metrics = [("noise_sd_hu", 1), ("noise_sd_ratio_ref", None), ("nps_peak_lp_mm", 3), ("nps_peak_ratio_ref", None),
               ("nps_mean_lp_mm", 3), ("edge_width_mm", 2), ("mae_t80_hu", 1), ("ssim_t80", 3)]
    rows = []
    for protocol in cohort.protocols:
        for method in cohort.methods:
            row = _lookup(cohort.summary, {"protocol": protocol, "method": method})
            if row is None:
                continue
            cells = [protocol, method_label(method), str(int(row.get("noise_sd_hu_n", 0) or 0))]
            for metric, digits in metrics:
                if digits is None:  # a ratio
                    value = row.get(metric, np.nan)
                    cells.append(f"{value:.2f}" if math.isfinite(value) else DASH)
                else:
                    cells.append(fmt_mean_sd(row.get(f"{metric}_mean", np.nan), row.get(f"{metric}_sd", np.nan),
                                             digits=digits))
            rows.append(cells)
    return Table("Image quality: noise, noise texture and sharpness per protocol and method", headers, rows,
                 QUALITY_NOTE.format(ref=cohort.reference_protocol))


FAMILY_LABELS = {"firstorder": "First-order", "glcm": "GLCM", "glrlm": "GLRLM", "glszm": "GLSZM", "ngtdm": "NGTDM"}
RADIOMICS_NOTE = (
    "{features} IBSI features (first-order, GLCM, GLRLM, GLSZM, NGTDM; fixed bin width {bin:.0f} HU; 2-D matrices "
    "merged over {slices} slices around the largest liver cross-section) in the exam's reference liver mask, the "
    "same voxels for every series. Reproducible: Lin's CCC across exams >= {threshold} (Choe et al., Radiology "
    "2019) against {against}; share of the features with a defined CCC, overall and per family, and the median "
    "CCC. With few exams a CCC is imprecise. Per-feature CCCs: radiomics_ccc.csv.")


def radiomics_table(cohort: Cohort, truth: bool = False) -> Table:
    """Share of reproducible radiomic features per protocol and method, against the reference or the truth."""
    suffix = "_truth" if truth else ""
    headers = ["Protocol", "Method", "n", "Features", "Reproducible (%)",
               *(f"{label} (%)" for label in FAMILY_LABELS.values()), "Median CCC"]
    rows = []
    for protocol in cohort.protocols:
        for method in cohort.methods:
            row = _lookup(cohort.summary, {"protocol": protocol, "method": method})
            if row is None or not math.isfinite(row.get("radiomics_n", np.nan)):
                continue
            cells = [protocol, method_label(method), str(int(row["radiomics_n"]))]
            if not truth and protocol == cohort.reference_protocol and method == ORIGINAL:
                rows.append(cells + ["reference"] * (len(headers) - 3))
                continue
            shares = [row[f"radiomics_reproducible{suffix}"]]
            shares += [row[f"radiomics_reproducible{suffix}_{family}"] for family in FAMILY_LABELS]
            cells.append(str(int(row[f"radiomics_features{suffix}"])))
            cells += [f"{100 * v:.0f}" if math.isfinite(v) else DASH for v in shares]
            median = row[f"radiomics_ccc_median{suffix}"]
            rows.append(cells + [f"{median:.3f}" if math.isfinite(median) else DASH])
    against = "the noise-free T80" if truth else f"the original {cohort.reference_protocol}"
    note = RADIOMICS_NOTE.format(features=len(radiomics.feature_names()), bin=radiomics.BIN_WIDTH_HU,
                                 slices=radiomics.SLAB_SLICES, threshold=reproducibility.THRESHOLD,
                                 against=against + (" of the same exam" if not truth else ""))
    return Table(f"Radiomics reproducibility against {against} (CCC >= {reproducibility.THRESHOLD})", headers, rows,
                 note)


def headline(cohort: Cohort) -> str:
    """Table 2 and Table 4 in Markdown: what a terminal shows at the end of a run."""
    return paper_tables(cohort)[0].markdown() + "\n\n" + ccc_table(cohort).markdown()


def write_report(cohort: Cohort, out: Path,
                 images: Callable[[str, str, str], np.ndarray | None] | None = None) -> ReportFiles:
    """Write ``report.md``, ``report.html``, ``plots/*.png``, ``exams.csv`` and ``summary.csv`` under ``out``
    (and ``radiomics_features.csv``, ``radiomics_ccc.csv`` when the cohort has radiomics).

    ``images(exam, protocol, method)`` gives a series' HU volume for the example slices (None: masks only).
    """
    out = Path(out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    figures: list[tuple[str, Path, bytes]] = []
    for protocol in cohort.protocols:
        png = plots.bland_altman_png(cohort.exams, protocol, cohort.methods)
        figures.append((f"Bland-Altman, {protocol}", out / "plots" / f"bland_altman_{protocol}.png", png))
    example = plots.pick_example(cohort.exams)
    if example is not None:
        exam, _ = example
        loader = (lambda p, m: images(exam, p, m)) if images is not None else (lambda p, m: None)
        png = plots.example_slices_png(cohort.sources, exam, cohort.protocols, cohort.methods,
                                       cohort.reference_protocol, loader)
        figures.append((f"Example slices, {exam}", out / "plots" / "example_slices.png", png))
    if cohort.has_radiomics and cohort.radiomics_ccc["ccc"].notna().any():
        png = plots.radiomics_ccc_png(cohort.radiomics_ccc, cohort.protocols, cohort.methods,
                                      cohort.reference_protocol, reproducibility.THRESHOLD)
        figures.append(("Radiomics: CCC per feature", out / "plots" / "radiomics_ccc.png", png))
    for _, path, png in figures:
        path.write_bytes(png)
    tables = paper_tables(cohort)
    intro = _intro(cohort)
    md = ["# ctharmony cohort evaluation", "", *intro, ""]
    md += [t.markdown() + "\n" for t in tables]
    md += ["## Figures", ""] + [f"![{title}](plots/{path.name})\n" for title, path, _ in figures]
    (out / "report.md").write_text("\n".join(md), encoding="utf-8")
    body = "".join(f"<p>{html.escape(line.lstrip('- '))}</p>" for line in intro)
    body += "".join(t.html() for t in tables) + "<h2>Figures</h2>"
    for title, _, png in figures:
        body += (f"<figure><img alt='{html.escape(title)}' src='data:image/png;base64,"
                 f"{base64.b64encode(png).decode()}'/><figcaption>{html.escape(title)}</figcaption></figure>")
    (out / "report.html").write_text(_HTML.format(body=body), encoding="utf-8")
    cohort.exams.to_csv(out / "exams.csv", index=False)
    cohort.summary.to_csv(out / "summary.csv", index=False)
    csvs = [out / "exams.csv", out / "summary.csv"]
    if cohort.has_radiomics:
        cohort.radiomics.to_csv(out / "radiomics_features.csv", index=False)
        cohort.radiomics_ccc.to_csv(out / "radiomics_ccc.csv", index=False)
        csvs += [out / "radiomics_features.csv", out / "radiomics_ccc.csv"]
    if cohort.site_summary is not None:
        cohort.site_summary.to_csv(out / "site_summary.csv", index=False)
        csvs.append(out / "site_summary.csv")
    return ReportFiles(out, out / "report.md", out / "report.html", [p for _, p, _ in figures], csvs)


def _intro(cohort: Cohort) -> list[str]:
    exams = cohort.exams["exam"].nunique()
    lines = [
        f"- {exams} exams, protocols {', '.join(cohort.protocols)}; methods "
        f"{', '.join(method_label(m) for m in cohort.methods)}.",
        f"- Reference: the liver mask on the original {cohort.reference_protocol} series of the same exam "
        f"(as in Lee et al., Korean J Radiol 2023).{' True masks were also given.' if cohort.has_truth else ''}",
        f"- Series that failed conversion and are left out: {cohort.failed_series}.",
    ]
    lines += [f"- Model of {method_label(k) if k != 'segmenter' else 'the segmenter'}: {uri}"
              for k, uri in sorted(cohort.model_uris.items())]
    return lines


_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ctharmony cohort evaluation</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:0.5em 0}}td,th{{border:1px solid #bbb;padding:3px 8px;text-align:right}}
th{{background:#eee}}td:first-child{{text-align:left}}.note{{font-size:0.85em;color:#555}}
img{{max-width:100%}}</style></head>
<body><h1>ctharmony cohort evaluation</h1>{body}</body></html>
"""
