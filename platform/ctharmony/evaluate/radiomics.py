"""Radiomic features of a CT region (IBSI 1 definitions): first-order, GLCM, GLRLM, GLSZM and NGTDM.

Intensities are discretised with a fixed bin width (``BIN_WIDTH_HU``, 25 HU, as usual for CT) on a grid
that starts at ``LOWER_HU``, so one HU value gets the same grey level in every series. Texture matrices
are 2-D (in-plane neighbours only, Chebyshev distance 1) and merged over the slices and, for the GLCM
and GLRLM, over the four in-plane directions before features are computed: IBSI's "2.5D, merged"
aggregation, which gives one stable value per region and is cheap. Definitions (Zwanenburg et al.,
Radiology 2020; IBSI reference manual):

- ``firstorder_*``: intensity statistics of the HU values (mean, variance, skewness, excess kurtosis,
  percentiles, deviations, energy, RMS) and the entropy (log2) and uniformity of the grey-level histogram;
- ``glcm_*``: symmetric co-occurrence matrix, 25 features (joint / difference / sum statistics, contrast,
  inverse differences, correlation, cluster measures, information correlations);
- ``glrlm_*``: run lengths; ``glszm_*``: 8-connected zones per slice; 16 features each;
- ``ngtdm_*``: grey-tone differences to the mean of the in-slice neighbours that lie in the region.

Example:
    >>> hu = np.random.default_rng(0).normal(60.0, 20.0, (3, 32, 32))
    >>> values = features(hu, np.ones(hu.shape, bool))
    >>> len(values), sorted({name.split("_")[0] for name in values})
    (82, ['firstorder', 'glcm', 'glrlm', 'glszm', 'ngtdm'])
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

BIN_WIDTH_HU = 25.0
LOWER_HU = -1000.0  # start of the fixed-bin-size grid: grey level 1 is [-1000, -975) HU
SLAB_SLICES = 5
FAMILIES = ("firstorder", "glcm", "glrlm", "glszm", "ngtdm")
DIRECTIONS = ((0, 1), (1, 1), (1, 0), (1, -1))  # in-plane (dy, dx): 0, 45, 90, 135 degrees
MAX_COARSENESS = 1e6  # IBSI's value when every grey-tone difference is 0
RUN_NAMES = ("sre", "lre", "lgre", "hgre", "srlge", "srhge", "lrlge", "lrhge", "glnu", "glnu_norm", "rlnu",
             "rlnu_norm", "run_percentage", "gl_variance", "rl_variance", "run_entropy")
ZONE_NAMES = ("sze", "lze", "lgze", "hgze", "szlge", "szhge", "lzlge", "lzhge", "glnu", "glnu_norm", "zsnu",
              "zsnu_norm", "zone_percentage", "gl_variance", "zs_variance", "zone_entropy")


def discretise(image: np.ndarray, bin_width: float = BIN_WIDTH_HU, lower: float = LOWER_HU) -> np.ndarray:
    """Fixed-bin-size grey levels ``floor((x - lower) / bin_width) + 1`` (at least 1)."""
    levels = np.floor((np.asarray(image, np.float64) - lower) / bin_width).astype(np.int64) + 1
    return np.maximum(levels, 1)


def slab(mask: np.ndarray, slices: int = SLAB_SLICES) -> np.ndarray:
    """``mask`` on ``slices`` consecutive slices centred on its largest cross-section (empty if the mask is)."""
    mask = np.asarray(mask).astype(bool)
    out = np.zeros_like(mask)
    area = mask.sum(axis=(1, 2))
    if not area.any():
        return out
    start = int(np.clip(int(np.argmax(area)) - slices // 2, 0, max(0, mask.shape[0] - slices)))
    out[start:start + slices] = mask[start:start + slices]
    return out


def features(image: np.ndarray, roi: np.ndarray, bin_width: float = BIN_WIDTH_HU,
             lower: float = LOWER_HU) -> dict[str, float]:
    """Every feature of the region ``roi`` of ``image`` (``(z, y, x)``); all NaN when the region is empty."""
    image, roi = np.asarray(image, np.float64), np.asarray(roi).astype(bool)
    if image.ndim == 2:
        image, roi = image[None], roi[None]
    if image.shape != roi.shape:
        raise ValueError(f"radiomics: roi shape {roi.shape} differs from the image's {image.shape}")
    if not roi.any():
        return dict.fromkeys(feature_names(), float("nan"))
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(roi))
    image, roi = image[box], roi[box]
    levels = np.where(roi, discretise(image, bin_width, lower), 0)
    grey = np.arange(levels[roi].min(), levels[roi].max() + 1)
    out = {f"firstorder_{k}": v for k, v in first_order(image[roi], levels[roi]).items()}
    out |= {f"glcm_{k}": v for k, v in glcm_features(glcm(levels, grey), grey).items()}
    runs = merge([run_matrix(levels, grey, dy, dx) for dy, dx in DIRECTIONS])
    out |= {f"glrlm_{k}": v for k, v in size_features(runs, grey, 4 * int(roi.sum()), RUN_NAMES).items()}
    zones = zone_matrix(levels, grey)
    out |= {f"glszm_{k}": v for k, v in size_features(zones, grey, int(roi.sum()), ZONE_NAMES).items()}
    out |= {f"ngtdm_{k}": v for k, v in ngtdm_features(*ngtdm(levels, grey), grey).items()}
    return {k: float(v) for k, v in out.items()}


def feature_names() -> list[str]:
    """Names of every feature, in the order :func:`features` returns them."""
    first = ["mean", "variance", "skewness", "kurtosis", "median", "minimum", "p10", "p90", "maximum", "iqr", "range",
             "mad", "rmad", "medad", "cov", "qcod", "energy", "rms", "entropy", "uniformity"]
    return ([f"firstorder_{n}" for n in first] + [f"glcm_{n}" for n in GLCM_NAMES]
            + [f"glrlm_{n}" for n in RUN_NAMES] + [f"glszm_{n}" for n in ZONE_NAMES]
            + [f"ngtdm_{n}" for n in ("coarseness", "contrast", "busyness", "complexity", "strength")])


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def first_order(x: np.ndarray, levels: np.ndarray) -> dict[str, float]:
    """Intensity statistics of the values ``x`` and histogram entropy / uniformity of their grey ``levels``."""
    mean, var = x.mean(), x.var()
    centred = x - mean
    p10, p25, median, p75, p90 = np.percentile(x, [10, 25, 50, 75, 90])
    middle = x[(x >= p10) & (x <= p90)]
    hist = np.bincount(levels - levels.min()) / levels.size
    return {
        "mean": mean, "variance": var,
        "skewness": (centred**3).mean() / var**1.5 if var > 0 else 0.0,
        "kurtosis": (centred**4).mean() / var**2 - 3.0 if var > 0 else 0.0,
        "median": median, "minimum": x.min(), "p10": p10, "p90": p90, "maximum": x.max(), "iqr": p75 - p25,
        "range": x.max() - x.min(), "mad": np.abs(centred).mean(), "rmad": np.abs(middle - middle.mean()).mean(),
        "medad": np.abs(x - median).mean(), "cov": np.sqrt(var) / mean if mean else np.nan,
        "qcod": (p75 - p25) / (p75 + p25) if p75 + p25 else np.nan, "energy": (x**2).sum(),
        "rms": np.sqrt((x**2).mean()), "entropy": _entropy(hist), "uniformity": (hist**2).sum(),
    }


def _shifted(a: np.ndarray, dy: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
    """Views of ``a`` (``(z, y, x)``) at each pixel and at its in-plane neighbour ``(+dy, +dx)``."""
    h, w = a.shape[-2:]
    here = a[..., max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    there = a[..., max(0, dy):h - max(0, -dy), max(0, dx):w - max(0, -dx)]
    return here, there


def glcm(levels: np.ndarray, grey: np.ndarray) -> np.ndarray:
    """Symmetric co-occurrence counts (distance 1) merged over slices and the 4 in-plane directions."""
    n, lo = len(grey), int(grey[0])
    counts = np.zeros(n * n, np.int64)
    for dy, dx in DIRECTIONS:
        a, b = _shifted(levels, dy, dx)
        both = (a > 0) & (b > 0)
        counts += np.bincount((a[both] - lo) * n + (b[both] - lo), minlength=n * n)
    counts = counts.reshape(n, n)
    return counts + counts.T


GLCM_NAMES = ("joint_max", "joint_average", "joint_variance", "joint_entropy", "diff_average", "diff_variance",
              "diff_entropy", "sum_average", "sum_variance", "sum_entropy", "asm", "contrast", "dissimilarity",
              "inv_diff", "inv_diff_norm", "inv_diff_moment", "inv_diff_moment_norm", "inv_variance",
              "correlation", "autocorrelation", "cluster_tendency", "cluster_shade", "cluster_prominence",
              "imc1", "imc2")


def glcm_features(counts: np.ndarray, grey: np.ndarray) -> dict[str, float]:
    """The 25 IBSI GLCM features of a co-occurrence matrix over grey levels ``grey``."""
    if counts.sum() == 0:
        return dict.fromkeys(GLCM_NAMES, np.nan)
    p = counts / counts.sum()
    n = len(grey)
    i, j = grey[:, None].astype(np.float64), grey[None, :].astype(np.float64)
    px, py = p.sum(axis=1), p.sum(axis=0)
    mu = (i * p).sum()
    mux, muy = (grey * px).sum(), (grey * py).sum()
    sx, sy = np.sqrt(((grey - mux) ** 2 * px).sum()), np.sqrt(((grey - muy) ** 2 * py).sum())
    k = np.arange(n)
    diff = np.bincount(np.abs(i - j).astype(np.int64).ravel(), p.ravel(), minlength=n)
    total = 2 * grey[0] + np.arange(2 * n - 1)
    sums = np.bincount((i + j - 2 * grey[0]).astype(np.int64).ravel(), p.ravel(), minlength=2 * n - 1)
    d_avg, s_avg = (k * diff).sum(), (total * sums).sum()
    hxy = _entropy(p.ravel())
    outer = px[:, None] * py[None, :]
    hxy1 = float(-(p[p > 0] * np.log2(outer[p > 0])).sum())
    hx = _entropy(px)
    cluster = i + j - mux - muy
    return {
        "joint_max": p.max(), "joint_average": mu, "joint_variance": ((i - mu) ** 2 * p).sum(),
        "joint_entropy": hxy, "diff_average": d_avg, "diff_variance": ((k - d_avg) ** 2 * diff).sum(),
        "diff_entropy": _entropy(diff), "sum_average": s_avg, "sum_variance": ((total - s_avg) ** 2 * sums).sum(),
        "sum_entropy": _entropy(sums), "asm": (p**2).sum(), "contrast": (k**2 * diff).sum(),
        "dissimilarity": d_avg, "inv_diff": (diff / (1 + k)).sum(), "inv_diff_norm": (diff / (1 + k / n)).sum(),
        "inv_diff_moment": (diff / (1 + k**2)).sum(), "inv_diff_moment_norm": (diff / (1 + (k / n) ** 2)).sum(),
        "inv_variance": (diff[1:] / k[1:] ** 2).sum(),
        "correlation": ((i - mux) * (j - muy) * p).sum() / (sx * sy) if sx > 0 and sy > 0 else np.nan,
        "autocorrelation": (i * j * p).sum(), "cluster_tendency": (cluster**2 * p).sum(),
        "cluster_shade": (cluster**3 * p).sum(), "cluster_prominence": (cluster**4 * p).sum(),
        "imc1": (hxy - hxy1) / hx if hx > 0 else np.nan,
        "imc2": np.sqrt(max(0.0, 1.0 - np.exp(-2.0 * (_entropy(outer.ravel()) - hxy)))),
    }


def run_matrix(levels: np.ndarray, grey: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Counts of (grey level, run length) of the runs of equal pixels along in-plane direction ``(dy, dx)``."""
    roi = levels > 0
    here, there = _shifted(levels, dy, dx)
    link = (here > 0) & (here == there)
    ahead = np.zeros(levels.shape, bool)  # the next pixel along (dy, dx) has the same grey level
    behind = np.zeros(levels.shape, bool)  # the previous one has
    _shifted(ahead, dy, dx)[0][...] = link
    _shifted(behind, dy, dx)[1][...] = link
    starts, ends = _run_keys(roi & ~behind, dy, dx), _run_keys(roi & ~ahead, dy, dx)
    order = np.argsort(starts)  # by slice, line, then position along the line: the k-th start and the
    lengths = np.abs(np.sort(ends) - starts[order]) + 1  # k-th end bound one run
    return _counts(levels[roi & ~behind][order], lengths, grey)


def _run_keys(pixels: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``(slice, line, position along it)`` of the pixels along direction ``(dy, dx)``, as one sortable integer."""
    z, y, x = np.nonzero(pixels)
    _, h, w = pixels.shape
    line = {(0, 1): y, (1, 0): x, (1, 1): x - y + h, (1, -1): x + y}[(dy, dx)]
    along = x if dx else y
    return (z * (h + w + 1) + line) * max(h, w) + along


def zone_matrix(levels: np.ndarray, grey: np.ndarray) -> np.ndarray:
    """Counts of (grey level, zone size) of the 8-connected in-slice zones of equal pixels."""
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = True  # in-plane neighbours only: slices are not linked
    grey_of, sizes = [], []
    for level in np.unique(levels[levels > 0]):
        labels, count = ndimage.label(levels == level, structure)
        sizes.append(np.bincount(labels.ravel())[1:])
        grey_of.append(np.full(count, level))
    return _counts(np.concatenate(grey_of), np.concatenate(sizes), grey)


def _counts(grey_of: np.ndarray, sizes: np.ndarray, grey: np.ndarray) -> np.ndarray:
    out = np.zeros((len(grey), int(sizes.max())), np.int64)
    np.add.at(out, (grey_of - grey[0], sizes - 1), 1)
    return out


def merge(matrices: list[np.ndarray]) -> np.ndarray:
    """The sum of (grey level, size) count matrices of different widths."""
    out = np.zeros((matrices[0].shape[0], max(m.shape[1] for m in matrices)), np.int64)
    for m in matrices:
        out[:, :m.shape[1]] += m
    return out


def size_features(counts: np.ndarray, grey: np.ndarray, voxels: int, names: tuple[str, ...]) -> dict[str, float]:
    """The 16 IBSI run-length (or size-zone) features; ``voxels``: the region's pixels (times directions merged)."""
    total = counts.sum()
    p = counts / total
    i = grey[:, None].astype(np.float64)
    j = np.arange(1, counts.shape[1] + 1, dtype=np.float64)[None, :]
    by_grey, by_size = counts.sum(axis=1), counts.sum(axis=0)
    mu_i, mu_j = (i * p).sum(), (j * p).sum()
    values = [(p / j**2).sum(), (p * j**2).sum(), (p / i**2).sum(), (p * i**2).sum(), (p / (i**2 * j**2)).sum(),
              (p * i**2 / j**2).sum(), (p * j**2 / i**2).sum(), (p * i**2 * j**2).sum(), (by_grey**2).sum() / total,
              (by_grey**2).sum() / total**2, (by_size**2).sum() / total, (by_size**2).sum() / total**2,
              total / voxels, ((i - mu_i) ** 2 * p).sum(), ((j - mu_j) ** 2 * p).sum(), _entropy(p.ravel())]
    return dict(zip(names, values, strict=True))


def ngtdm(levels: np.ndarray, grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(n_i, s_i)``: pixels of each grey level that have a neighbour in the region, and their summed
    absolute difference to the mean of those in-slice neighbours (merged over slices)."""
    roi = levels > 0
    kernel = np.ones((1, 3, 3))
    kernel[0, 1, 1] = 0
    total = ndimage.convolve(levels.astype(np.float64), kernel, mode="constant")
    count = ndimage.convolve(roi.astype(np.float64), kernel, mode="constant")
    valid = roi & (count > 0)
    index = levels[valid] - grey[0]
    diff = np.abs(levels[valid] - total[valid] / count[valid])
    return (np.bincount(index, minlength=len(grey)).astype(np.float64),
            np.bincount(index, diff, minlength=len(grey)))


def ngtdm_features(n: np.ndarray, s: np.ndarray, grey: np.ndarray) -> dict[str, float]:
    """Coarseness, contrast, busyness, complexity and strength (Amadasun and King 1989, as IBSI extends them)."""
    names = ("coarseness", "contrast", "busyness", "complexity", "strength")
    if n.sum() == 0:
        return dict.fromkeys(names, np.nan)
    p = n / n.sum()
    present = p > 0
    g, p, s = grey[present].astype(np.float64), p[present], s[present]
    weighted = p * s
    ps = weighted.sum()
    gap = g[:, None] - g[None, :]
    pairs = len(g) * (len(g) - 1)
    busy = np.abs(g[:, None] * p[:, None] - g[None, :] * p[None, :]).sum()
    return {
        "coarseness": 1.0 / ps if ps > 0 else MAX_COARSENESS,
        "contrast": (p[:, None] * p[None, :] * gap**2).sum() / pairs * s.sum() / n.sum() if pairs else 0.0,
        "busyness": ps / busy if busy > 0 else 0.0,
        "complexity": (np.abs(gap) * (weighted[:, None] + weighted[None, :]) / (p[:, None] + p[None, :])).sum()
        / n.sum(),
        "strength": ((p[:, None] + p[None, :]) * gap**2).sum() / s.sum() if s.sum() > 0 else 0.0,
    }
