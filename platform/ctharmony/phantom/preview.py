"""Preview montage: one slice of one study in all six protocols, read back from the DICOM files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

WINDOW = (60.0, 450.0)  # level, width (HU): the same for all six panels


def _read_slice(path: Path) -> np.ndarray:
    from ctharmony.archive.reader import read_series

    return read_series([path]).hu[0]  # the archive's reading: rescale, padding, errors naming the file


def write_preview(out: Path, row: Any, path: Path) -> Path:
    """Write a 2 x 3 montage PNG of the middle slice of ``row``'s study (a phantom.parquet row)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ctharmony.phantom.physics import PROTOCOLS

    level, width = WINDOW
    study = Path(out) / "dicom" / row["site"] / row["patient_id"]
    fig, axes = plt.subplots(2, 3, figsize=(12, 8.4), facecolor="black")
    for ax, protocol in zip(axes.flat, PROTOCOLS, strict=True):
        files = sorted((study / protocol).glob("*.dcm"))
        if not files:
            raise FileNotFoundError(f"no DICOM files for the preview in {study / protocol}")
        hu = _read_slice(files[len(files) // 2])
        ax.imshow(hu, cmap="gray", vmin=level - width / 2, vmax=level + width / 2)
        ax.set_title(protocol, color="white")
        ax.axis("off")
    fig.suptitle(f"{row['patient_id']} ({row['site']}), W {width:.0f} / L {level:.0f} HU", color="white")
    fig.tight_layout()
    fig.savefig(path, dpi=80, facecolor="black")
    plt.close(fig)
    return path
