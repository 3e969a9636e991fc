"""Write a phantom series as classic CT Image Storage files (one file per slice), on the archive's CT writer core.

Pixels are stored as unsigned 16-bit with RescaleIntercept -1024 and RescaleSlope 1 (HU = value - 1024),
axial orientation (or the one given, e.g. gantry-tilted), ImagePositionPatient and SliceLocation per slice.
UIDs are deterministic (the core's :func:`~ctharmony.archive.ct_dataset.derived_uid` in the phantom's
namespace, from the generator seed and the object's role), so the same seed gives byte-identical files.

Example:
    >>> deterministic_uid("seed-0", "study", 3).startswith("2.25.")
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ctharmony.archive.ct_dataset import AXIAL, ct_template, derived_uid, slice_part, stored_values, write_slices

HU_OFFSET = 1024
UID_NAMESPACE = "ctharmony-phantom"

# Tags per protocol (cross-team contract: the catalog classifies series by them). {k} = site kernel.
PROTOCOL_TAGS: dict[str, dict[str, Any]] = {
    "FBP": {"ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"], "SeriesDescription": "Abdomen PV 3.0 {k} FBP",
            "ConvolutionKernel": "{k}", "KVP": "120", "SeriesNumber": 2},
    "IR": {"ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"], "SeriesDescription": "Abdomen PV 3.0 {k} SAFIRE 3",
           "ConvolutionKernel": ["{k}", "3"], "KVP": "120", "SeriesNumber": 3},
    "M40": {"ImageType": ["DERIVED", "PRIMARY", "AXIAL", "MONOENERGETIC"],
            "SeriesDescription": "Abdomen PV Mono+ 40keV", "ConvolutionKernel": "{k}", "KVP": None,
            "SeriesNumber": 4},
    "M60": {"ImageType": ["DERIVED", "PRIMARY", "AXIAL", "MONOENERGETIC"],
            "SeriesDescription": "Abdomen PV Mono+ 60keV", "ConvolutionKernel": "{k}", "KVP": None,
            "SeriesNumber": 5},
    "M80": {"ImageType": ["DERIVED", "PRIMARY", "AXIAL", "MONOENERGETIC"],
            "SeriesDescription": "Abdomen PV Mono+ 80keV", "ConvolutionKernel": "{k}", "KVP": None,
            "SeriesNumber": 6},
    "OPT": {"ImageType": ["DERIVED", "PRIMARY", "AXIAL", "OPTIMUM_CONTRAST"],
            "SeriesDescription": "Abdomen PV DE Optimum Contrast", "ConvolutionKernel": "{k}", "KVP": "120",
            "SeriesNumber": 7},
}


def deterministic_uid(*parts: Any) -> str:
    """A valid UID (``2.25.`` + decimal 128-bit integer) derived from ``parts`` in the phantom's namespace."""
    return derived_uid(*parts, namespace=UID_NAMESPACE)


def protocol_tags(protocol: str, kernel: str) -> dict[str, Any]:
    """The contract's tags for ``protocol`` at a site using ``kernel``."""
    tags = dict(PROTOCOL_TAGS[protocol])
    tags["SeriesDescription"] = tags["SeriesDescription"].format(k=kernel)
    conv = tags["ConvolutionKernel"]
    tags["ConvolutionKernel"] = [c.format(k=kernel) for c in conv] if isinstance(conv, list) else conv.format(k=kernel)
    return tags


def write_ct_series(hu: np.ndarray, out_dir: Path, *, tags: Mapping[str, Any], origin: tuple[float, float, float],
                    spacing: tuple[float, float, float], sop_uid_seed: str, positions: np.ndarray | None = None,
                    orientation: Sequence[float] | None = None) -> list[Path]:
    """Write ``hu`` (z, y, x) as one CT file per slice ``0001.dcm ...``; returns the paths in z order.

    Args:
        hu: CT numbers; rounded and clipped to [-1024, 64511].
        out_dir: series folder (created).
        tags: patient / study / series / equipment attributes by DICOM keyword (None = empty, type 2).
        origin: LPS (x, y, z) mm of voxel (0, 0, 0); slices advance along +z.
        spacing: (z, y, x) mm.
        sop_uid_seed: seed of the deterministic SOPInstanceUIDs.
        positions: ImagePositionPatient of every slice, (z, 3) LPS mm (default: ``origin`` + k ``spacing[0]``
            along z); SliceLocation is their z.
        orientation: ImageOrientationPatient, row then column cosines (default: axial ``1 0 0 0 1 0``).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    stored = stored_values(hu, intercept=-HU_OFFSET, signed=False)
    nz, ny, nx = stored.shape
    if positions is not None and np.shape(positions) != (nz, 3):
        raise ValueError(f"{out_dir}: {np.shape(positions)} slice positions for {nz} slices, need ({nz}, 3)")
    template = ct_template(rows=ny, columns=nx, pixel_spacing=spacing[1:], signed=False, intercept=-HU_OFFSET,
                           orientation=AXIAL if orientation is None else orientation,
                           tags={**tags, "WindowCenter": "50", "WindowWidth": "400"})
    if positions is None:
        positions = [(origin[0], origin[1], origin[2] + k * spacing[0]) for k in range(nz)]
    parts = [slice_part(stored[k], position=positions[k], sop_uid=deterministic_uid(sop_uid_seed, k), instance=k + 1,
                        slice_location=True) for k in range(nz)]
    return write_slices(template, parts, [out_dir / f"{k + 1:04d}.dcm" for k in range(nz)])
