"""Training pairs in physical space: an input series on the reference (M80) series' planes, or a refusal.

:func:`pair_series` resamples the input onto the target's slice planes and pixel grid
(:func:`ctharmony.archive.onto_planes.resample_onto`: thin to thick by averaging inside the target's slab,
linear in plane) and keeps the pair only when it checks out:

- the same FrameOfReferenceUID (no registration is known between two frames);
- parallel slice planes;
- enough overlap: at least :data:`MIN_Z_OVERLAP` of the target's planes and :data:`MIN_AREA_OVERLAP` of
  their pixels covered;
- registration: the normalised cross-correlation of the two images (smoothed, so noise does not count)
  over the soft tissue both cover is at least :data:`MIN_NCC` where the headers put the input, and no
  in-plane shift of up to :data:`MAX_SHIFT_MM` correlates better (a deliberately shifted series fails).

The result is a :class:`PairOutcome` (what was checked, the reason for a refusal) and, when used, the
resampled input with its coverage mask.

Example::

    outcome, resampled = pair_series(fbp_volume, m80_volume, "FBP")
    outcome.used, outcome.reason
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ctharmony.archive.onto_planes import PlanesNotParallel, Resampled, resample_onto
from ctharmony.archive.volume import Volume

MIN_Z_OVERLAP = 0.3  # fraction of the target's planes the input must cover
MIN_AREA_OVERLAP = 0.25  # fraction of the covered planes' pixels
MIN_NCC = 0.5  # soft-tissue normalised cross-correlation of a registered pair, at least
NCC_MARGIN = 0.03  # a shifted input correlating better than this over the headers' position: misregistered
MAX_SHIFT_MM, SHIFT_STEP_MM = 16.0, 4.0  # in-plane shifts tried
SOFT_TISSUE_HU = (-150.0, 250.0)  # where the cross-correlation is measured (target, smoothed)
NCC_SMOOTH_MM = 3.0  # Gaussian SD of the smoothing (at least a pixel): noise does not count
NCC_PLANES = 8
MIN_NCC_PIXELS = 200  # fewer soft-tissue pixels: the registration cannot be checked (not refused)


@dataclasses.dataclass(frozen=True)
class PairOutcome:
    """One input series against the target: used or refused (``reason``), with the checked figures."""

    protocol: str
    used: bool
    reason: str = ""
    z_overlap: float = 0.0  # fraction of the target's planes covered
    area_overlap: float = 0.0  # fraction of the covered planes' pixels covered
    ncc: float = float("nan")
    identity: bool = False  # the input is on the target's exact grid

    def as_row(self) -> dict[str, object]:
        return {"protocol": self.protocol, "status": "used" if self.used else "refused", "reason": self.reason,
                "z_overlap": round(self.z_overlap, 3), "area_overlap": round(self.area_overlap, 3),
                "ncc": None if np.isnan(self.ncc) else round(self.ncc, 3), "identity": self.identity}


@dataclasses.dataclass(frozen=True)
class Registration:
    """Soft-tissue NCC where the headers put the input (``ncc``) and its best value over in-plane shifts."""

    ncc: float
    best_ncc: float
    best_shift_mm: float
    pixels: int

    @property
    def misregistered(self) -> bool:
        if np.isnan(self.ncc):
            return False  # too little soft tissue to tell
        return self.ncc < MIN_NCC or (self.best_shift_mm > 0 and self.best_ncc > self.ncc + NCC_MARGIN)


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / denominator if denominator > 0 else float("nan")


def registration(source: np.ndarray, target: np.ndarray, coverage: np.ndarray, pixel_mm: float) -> Registration:
    """Normalised cross-correlation of the smoothed input and target (z, y, x, on one grid) over the soft tissue
    both cover, at the headers' position and shifted in plane by up to :data:`MAX_SHIFT_MM` (on at most
    :data:`NCC_PLANES` planes)."""
    from scipy import ndimage

    planes = np.nonzero(coverage.reshape(len(coverage), -1).any(axis=1))[0]
    planes = planes[np.unique(np.linspace(0, len(planes) - 1, min(NCC_PLANES, len(planes))).round().astype(int))]
    sigma = max(1.0, NCC_SMOOTH_MM / pixel_mm)
    a = ndimage.gaussian_filter(source[planes].astype(np.float64), (0.0, sigma, sigma))
    b = ndimage.gaussian_filter(target[planes].astype(np.float64), (0.0, sigma, sigma))
    step = max(1, int(round(SHIFT_STEP_MM / pixel_mm)))
    shifts = step * np.arange(-int(MAX_SHIFT_MM / pixel_mm) // step, int(MAX_SHIFT_MM / pixel_mm) // step + 1)
    reach = int(shifts[-1])
    inner = ndimage.binary_erosion(coverage[planes], np.ones((1, 5, 5), bool))  # no fill value blurred in
    mask = inner & (b >= SOFT_TISSUE_HU[0]) & (b <= SOFT_TISSUE_HU[1])
    mask[:, :reach] = mask[:, mask.shape[1] - reach:] = False  # room for the shifts
    mask[:, :, :reach] = mask[:, :, mask.shape[2] - reach:] = False
    count = int(mask.sum())
    if count < MIN_NCC_PIXELS:
        return Registration(float("nan"), float("nan"), 0.0, count)
    zz, yy, xx = np.nonzero(mask)
    scores = {(dy, dx): _ncc(a[zz, yy, xx], b[zz, yy + dy, xx + dx])
              for dy in shifts.tolist() for dx in shifts.tolist()}
    best = max(scores, key=lambda k: -np.inf if np.isnan(scores[k]) else scores[k])
    return Registration(scores[(0, 0)], scores[best], float(np.hypot(*best)) * pixel_mm, count)


def _refused(protocol: str, reason: str, **figures: float) -> tuple[PairOutcome, None]:
    return PairOutcome(protocol, used=False, reason=reason, **figures), None


def pair_series(source: Volume, target: Volume, protocol: str,
                target_name: str = "M80") -> tuple[PairOutcome, Resampled | None]:
    """Check and resample one input series onto the target; ``(outcome, resampled or None if refused)``."""
    frame, target_frame = (str(v.tags.get("FrameOfReferenceUID", "") or "") for v in (source, target))
    if frame and target_frame and frame != target_frame:
        return _refused(protocol, f"another FrameOfReferenceUID than {target_name}'s and no registration between them")
    try:
        resampled = resample_onto(source, target)
    except PlanesNotParallel as err:
        return _refused(protocol, f"{err} of {target_name}'s")
    planes = resampled.planes_covered
    z_overlap = float(planes.mean())
    area = float(resampled.coverage[planes].mean()) if planes.any() else 0.0
    identity = bool(resampled.coverage.all() and np.array_equal(resampled.weights, np.eye(len(planes)))
                    and source.shape == target.shape and np.array_equal(resampled.hu, source.hu))
    figures = {"z_overlap": z_overlap, "area_overlap": area, "identity": identity}
    if not planes.any():
        s, t = (np.sort(v.positions @ target.normal) for v in (source, target))
        return _refused(protocol, f"no overlap with {target_name}: slices at {s[0]:.1f}..{s[-1]:.1f} mm along the "
                                  f"normal, {target_name}'s at {t[0]:.1f}..{t[-1]:.1f} mm", **figures)
    if z_overlap < MIN_Z_OVERLAP:
        return _refused(protocol, f"covers {z_overlap:.0%} of {target_name}'s slices (< {MIN_Z_OVERLAP:.0%})",
                        **figures)
    if area < MIN_AREA_OVERLAP:
        return _refused(protocol, f"covers {area:.0%} of {target_name}'s field of view (< {MIN_AREA_OVERLAP:.0%})",
                        **figures)
    reg = registration(resampled.hu, target.hu, resampled.coverage, target.spacing[1])
    figures["ncc"] = reg.ncc
    if reg.misregistered:
        where = (f"; {reg.best_ncc:.2f} with the input shifted {reg.best_shift_mm:.0f} mm in plane"
                 if reg.best_shift_mm > 0 and reg.best_ncc > reg.ncc + NCC_MARGIN else f" (< {MIN_NCC})")
        return _refused(protocol, f"misregistered: soft-tissue cross-correlation with {target_name} {reg.ncc:.2f} "
                                  f"where the headers put it{where}", **figures)
    return PairOutcome(protocol, used=True, **figures), resampled
