"""Intrahepatic vessels: portal-vein and hepatic-vein trees as tapered tubes inside the liver.

Each vessel is a line segment with a radius tapering from its start to its end. Only voxels that are
already liver are repainted, so vessels never leave the organ (the IVC and aorta are painted later).
"""

from __future__ import annotations

import numpy as np

from ctharmony.scanmodel.tissues import LABEL


def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance of ``points`` (N, 3) to segment a-b and the position t in [0, 1] of the nearest point."""
    ab = b - a
    t = np.clip(((points - a) @ ab) / float(ab @ ab), 0.0, 1.0)
    nearest = a + t[:, None] * ab
    return np.linalg.norm(points - nearest, axis=1), t


def vessel_tree(right_c, right_ax, left_c, s: float) -> list[tuple[str, np.ndarray, np.ndarray, float, float]]:
    """Segments (label name, start, end, start radius, end radius) in LPS mm."""
    rc, ra, lc = np.asarray(right_c, float), np.asarray(right_ax, float), np.asarray(left_c, float)
    hilum = rc + np.array([0.45 * ra[0], 0.15 * ra[1], -0.15 * ra[2]])
    right = rc + np.array([-0.35 * ra[0], 0.0, 0.05 * ra[2]])
    left = lc + np.array([0.0, 0.05 * ra[1], -0.1 * ra[2]])
    segments = [
        ("portal_vein", hilum, right, 6.0 * s, 4.0 * s),
        ("portal_vein", hilum, left, 5.0 * s, 3.0 * s),
        ("portal_vein", right, right + np.array([-0.2 * ra[0], 0.45 * ra[1], 0.35 * ra[2]]), 4.0 * s, 2.0 * s),
        ("portal_vein", right, right + np.array([0.0, -0.5 * ra[1], -0.45 * ra[2]]), 4.0 * s, 2.0 * s),
    ]
    confluence = rc + np.array([0.55 * ra[0], 0.45 * ra[1], 0.75 * ra[2]])  # near the IVC, superior
    for end in ((-0.65, -0.1, 0.1), (-0.05, -0.55, -0.1), (0.55, -0.6, 0.25)):
        tip = rc + np.asarray(end) * ra
        segments.append(("hepatic_vein", confluence, tip, 5.0 * s, 1.8 * s))
    return segments


def paint_liver_vessels(labels: np.ndarray, x, y, z, right_c, right_ax, left_c, s: float) -> None:
    """Repaint liver voxels lying inside the portal / hepatic vein tubes."""
    liver = labels == LABEL["liver"]
    if not liver.any():
        return
    xs, ys, zs = (np.broadcast_to(c, labels.shape)[liver] for c in (x, y, z))
    points = np.stack([xs, ys, zs], axis=1).astype(np.float64)
    new = np.full(points.shape[0], LABEL["liver"], np.uint8)
    for name, a, b, r0, r1 in vessel_tree(right_c, right_ax, left_c, s):
        reach = max(r0, r1)
        near = np.all((points >= np.minimum(a, b) - reach) & (points <= np.maximum(a, b) + reach), axis=1)
        index = np.flatnonzero(near)
        d, t = _segment_distance(points[index], a, b)
        new[index[d < r0 + (r1 - r0) * t]] = LABEL[name]
    labels[liver] = new
