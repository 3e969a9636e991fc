"""Figures of the cohort report (matplotlib, Agg backend, returned as PNG bytes).

- :func:`bland_altman_png`: per protocol, one panel per method, volume difference ratio (% of the
  reference volume) against the mean volume, with the bias and the 95 % limits of agreement.
- :func:`example_slices_png`: one exam, each protocol (rows) under each method (columns): the image
  (abdominal window) with the method's liver mask filled and the reference mask's contour.
- :func:`radiomics_ccc_png`: Lin's CCC of each radiomic feature (rows) against the reference, per
  protocol and method (columns), the reproducible ones (CCC >= threshold) marked.

Example::

    png = bland_altman_png(cohort.exams, "M40", ["original", "harmonized"])
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from ctharmony.evaluate import metrics, stats

log = logging.getLogger(__name__)

WINDOW_HU = (-160.0, 240.0)  # abdomen: level 40, width 400


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def bland_altman_png(exams: pd.DataFrame, protocol: str, methods: Sequence[str]) -> bytes:
    """Bland-Altman panels of one protocol, one per method that has reference comparisons."""
    plt = _pyplot()
    rows = exams[(exams["protocol"] == protocol) & exams["reference_volume_ml"].notna()]
    methods = [m for m in methods if (rows["method"] == m).any()]
    fig, axes = plt.subplots(1, max(len(methods), 1), figsize=(3.6 * max(len(methods), 1), 3.2),
                             squeeze=False, sharey=True)
    for ax, method in zip(axes[0], methods, strict=False):
        data = rows[rows["method"] == method]
        ref = data["reference_volume_ml"].to_numpy(float)
        vol = data["volume_ml"].to_numpy(float)
        ba = stats.bland_altman(vol, ref, percent_of=ref)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = 100.0 * (vol - ref) / ref
        ax.scatter((vol + ref) / 2.0, ratio, s=14, color="tab:blue")
        for value, style in ((ba.mean_difference, "-"), (ba.loa_low, "--"), (ba.loa_high, "--")):
            if np.isfinite(value):
                ax.axhline(value, color="tab:red", linestyle=style, linewidth=1)
        ax.axhline(0.0, color="grey", linewidth=0.5)
        ax.set_title(f"{protocol} {method}\nbias {ba.mean_difference:.1f}% "
                     f"({ba.loa_low:.1f}, {ba.loa_high:.1f})", fontsize=9)
        ax.set_xlabel("mean liver volume (mL)", fontsize=8)
    axes[0][0].set_ylabel("volume difference (% of reference)", fontsize=8)
    return _png(fig)


def pick_example(exams: pd.DataFrame) -> tuple[str, str] | None:
    """(exam, protocol): the protocol with the lowest mean original Dice, its median-Dice exam."""
    original = exams[(exams["method"] == "original") & exams["dice"].notna()]
    if original.empty:
        return None
    worst = original.groupby("protocol")["dice"].mean().idxmin()
    rows = original[original["protocol"] == worst].sort_values("dice")
    return str(rows.iloc[len(rows) // 2]["exam"]), str(worst)


def example_slices_png(sources: pd.DataFrame, exam: str, protocols: Sequence[str], methods: Sequence[str],
                       reference_protocol: str, images: Callable[[str, str], np.ndarray | None]) -> bytes:
    """Before/after slices of one exam; ``images(protocol, method)`` gives its HU volume or None."""
    plt = _pyplot()
    from matplotlib.colors import ListedColormap

    rows = sources[sources["exam"] == exam]
    ref_row = rows[(rows["protocol"] == reference_protocol) & (rows["method"] == "original")]
    reference = metrics.load_mask(ref_row.iloc[0]["mask_path"]).mask if len(ref_row) else None
    protocols = [p for p in protocols if (rows["protocol"] == p).any()]
    methods = [m for m in methods if (rows["method"] == m).any()]
    z = int(np.argmax(reference.sum(axis=(1, 2)))) if reference is not None else None
    height = 2.4 * len(protocols) + 0.4
    fig, axes = plt.subplots(len(protocols), len(methods), figsize=(2.4 * len(methods), height), squeeze=False)
    for i, protocol in enumerate(protocols):
        for j, method in enumerate(methods):
            ax = axes[i][j]
            ax.set_axis_off()
            match = rows[(rows["protocol"] == protocol) & (rows["method"] == method)]
            if match.empty:
                continue
            mask = metrics.load_mask(match.iloc[0]["mask_path"]).mask
            k = z if z is not None and z < mask.shape[0] else mask.shape[0] // 2
            image = images(protocol, method)
            if image is not None and image.shape == mask.shape:
                ax.imshow(image[k], cmap="gray", vmin=WINDOW_HU[0], vmax=WINDOW_HU[1])
            else:
                ax.imshow(np.zeros(mask.shape[1:]), cmap="gray", vmin=0, vmax=1)
            ax.imshow(np.ma.masked_equal(mask[k], 0), cmap=ListedColormap(["red"]), alpha=0.4, vmin=0, vmax=1)
            title = f"{protocol} {method}"
            if reference is not None and reference.shape == mask.shape:
                ax.contour(reference[k], levels=[0.5], colors="lime", linewidths=0.8)
                title += f"\nDice {metrics.dice(mask, reference):.3f}"
            ax.set_title(title, fontsize=8)
    fig.suptitle(f"{exam}: liver mask (red) and reference on original {reference_protocol} (green)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / height))
    return _png(fig)


def radiomics_ccc_png(ccc: pd.DataFrame, protocols: Sequence[str], methods: Sequence[str], reference_protocol: str,
                      threshold: float) -> bytes:
    """Heat map of the per-feature CCC against the original reference (``reproducibility.feature_ccc``)."""
    plt = _pyplot()
    columns = [(p, m) for p in protocols for m in methods if not (p == reference_protocol and m == "original")
               and ((ccc["protocol"] == p) & (ccc["method"] == m)).any()]
    features = list(dict.fromkeys(ccc["feature"]))
    table = ccc.pivot_table(index="feature", columns=["protocol", "method"], values="ccc", dropna=False)
    values = np.stack([table[c].reindex(features).to_numpy(float) if c in table else np.full(len(features), np.nan)
                       for c in columns], axis=1)
    fig, ax = plt.subplots(figsize=(2.6 + 0.42 * len(columns), 0.5 + 0.105 * len(features)))
    image = ax.imshow(np.clip(values, 0.0, 1.0), cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto",
                      interpolation="nearest")
    rows, cols = np.nonzero(values >= threshold)
    ax.scatter(cols, rows, s=3, color="black", marker=".")
    ax.set_xticks(range(len(columns)), [f"{p} {m}" for p, m in columns], rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(features)), features, fontsize=5)
    ax.set_title(f"CCC against original {reference_protocol} (dot: >= {threshold})", fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02).ax.tick_params(labelsize=7)
    return _png(fig)
