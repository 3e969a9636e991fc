"""Image-quality measures of a CT slice stack: noise, noise texture (NPS), streaks, edge sharpness, MAE, SSIM.

All images are HU, ``(z, y, x)`` or ``(y, x)``, with square pixels of ``pixel_mm``; masks are boolean of
the same shape. The measures:

- :func:`uniform_roi`: a uniform region (the liver eroded by ``erode_mm``, vessels removed by an HU band
  or an exclusion mask); :func:`noise_image` the noise in it: the residual against a noise-free image,
  else against a Gaussian-smoothed copy; :func:`noise_sd` its SD;
- :func:`radial_nps`: the radially averaged 2-D noise power spectrum (HU^2 mm^2 over lp/mm), of whole
  slices or of square patches inside an ROI; :func:`nps_peak_mean`: its peak and mean frequency;
- :func:`streak_index`: the directional excess of the 2-D NPS (1 for isotropic noise, > 1 when noise
  lines up along a few directions, as streaks do);
- :func:`edge_profile`: the edge spread function across a mask's boundary (pixels binned by signed
  distance, oversampled); :func:`edge_width_mm` its 10-90 % rise distance (2.563 sigma for a Gaussian
  blur) and :func:`mtf50_lp_mm` the frequency where its MTF falls to one half (0.1874 / sigma);
- :func:`mae`, :func:`ssim`: agreement with a reference image (SSIM of Wang et al. 2004 via scikit-image).

Example:
    >>> rng = np.random.default_rng(0)
    >>> white = rng.normal(0.0, 10.0, (4, 64, 64))
    >>> peak, mean = nps_peak_mean(white, pixel_mm=0.5)
    >>> abs(mean - 0.5) < 0.02  # a flat NPS up to Nyquist (1 lp/mm): mean frequency = Nyquist / 2
    True
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

GAUSS_10_90 = 2.5631  # 10-90 % width of a Gaussian-blurred step, in units of sigma
GAUSS_MTF50 = float(np.sqrt(np.log(2.0) / 2.0) / np.pi)  # MTF50 x sigma of a Gaussian blur (0.1874)


def _stack(a: np.ndarray, name: str = "image") -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"{name}: expected (z, y, x) or (y, x), got shape {a.shape}")
    return a


def _disk(radius_px: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius_px:radius_px + 1, -radius_px:radius_px + 1]
    return (yy**2 + xx**2 <= radius_px**2)[None]


def uniform_roi(mask: np.ndarray, pixel_mm: float, erode_mm: float = 6.0, image: np.ndarray | None = None,
                hu_band: tuple[float, float] | None = None, exclude: np.ndarray | None = None) -> np.ndarray:
    """A uniform region: ``mask`` minus ``exclude`` (e.g. true vessels) and pixels of ``image`` outside ``hu_band``.

    The result is eroded in-plane by ``erode_mm`` (a disk), so that no edge enters. Returns (z, y, x) bool.
    """
    roi = _stack(mask, "mask").astype(bool)
    if exclude is not None:
        roi = roi & ~_stack(exclude, "exclude").astype(bool)
    if hu_band is not None:
        if image is None:
            raise ValueError("uniform_roi: hu_band needs the image")
        img = _stack(image)
        roi = roi & (img >= hu_band[0]) & (img <= hu_band[1])
    radius = int(round(erode_mm / pixel_mm))
    return ndimage.binary_erosion(roi, _disk(radius)) if radius > 0 else roi


def noise_image(image: np.ndarray, reference: np.ndarray | None = None, pixel_mm: float = 1.0,
                smooth_mm: float = 4.0) -> np.ndarray:
    """Noise-only slices: ``image - reference`` (a noise-free image), else minus a Gaussian (``smooth_mm``) copy."""
    img = _stack(image).astype(np.float32)
    if reference is not None:
        ref = _stack(reference, "reference").astype(np.float32)
        if ref.shape != img.shape:
            raise ValueError(f"noise_image: reference shape {ref.shape} differs from the image's {img.shape}")
        return img - ref
    sigma = smooth_mm / pixel_mm
    return img - ndimage.gaussian_filter(img, (0, sigma, sigma))


def noise_sd(image: np.ndarray, roi: np.ndarray, reference: np.ndarray | None = None, pixel_mm: float = 1.0,
             smooth_mm: float = 4.0) -> float:
    """SD (HU) of the noise in ``roi`` (see :func:`noise_image`); NaN when the ROI is empty."""
    roi = _stack(roi, "roi").astype(bool)
    if not roi.any():
        return float("nan")
    return float(noise_image(image, reference, pixel_mm, smooth_mm)[roi].std())


def _patches(noise: np.ndarray, roi: np.ndarray | None, patch: int) -> np.ndarray:
    """Square ``patch`` x ``patch`` windows (half overlapping) lying wholly inside ``roi``; whole slices if None."""
    if roi is None:
        return noise
    roi = _stack(roi, "roi").astype(bool)
    if roi.shape != noise.shape:
        raise ValueError(f"radial_nps: roi shape {roi.shape} differs from the noise's {noise.shape}")
    inside = ndimage.uniform_filter(roi.astype(np.float32), (1, patch, patch), mode="constant") > 0.999
    half, step = patch // 2, max(1, patch // 2)
    out = []
    for z in range(noise.shape[0]):
        for y in range(half, noise.shape[1] - patch + half + 1, step):
            for x in range(half, noise.shape[2] - patch + half + 1, step):
                if inside[z, y, x]:
                    out.append(noise[z, y - half:y - half + patch, x - half:x - half + patch])
    if not out:
        raise ValueError(f"radial_nps: no {patch} x {patch} patch fits inside the ROI")
    return np.stack(out)


def nps_2d(noise: np.ndarray, pixel_mm: float, roi: np.ndarray | None = None, patch: int = 32) -> np.ndarray:
    """The 2-D NPS (HU^2 mm^2) on the ``fftshift``-ed grid, averaged over slices or ROI patches."""
    stack = _patches(_stack(noise, "noise").astype(np.float64), roi, patch)
    stack = stack - stack.mean(axis=(-2, -1), keepdims=True)
    power = np.abs(np.fft.fft2(stack)) ** 2
    ny, nx = stack.shape[-2:]
    return np.fft.fftshift(power.mean(axis=0)) * pixel_mm**2 / (ny * nx)


def _frequencies(shape: tuple[int, int], pixel_mm: float) -> tuple[np.ndarray, np.ndarray]:
    fy = np.fft.fftshift(np.fft.fftfreq(shape[0], d=pixel_mm))[:, None]
    fx = np.fft.fftshift(np.fft.fftfreq(shape[1], d=pixel_mm))[None, :]
    return fy + 0 * fx, fx + 0 * fy


def radial_nps(noise: np.ndarray, pixel_mm: float, roi: np.ndarray | None = None, patch: int = 32,
               bins: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged NPS: (bin centres lp/mm, NPS HU^2 mm^2), bins evenly over [0, Nyquist].

    Example:
        >>> f, p = radial_nps(np.random.default_rng(1).normal(0, 2.0, (8, 32, 32)), pixel_mm=1.0)
        >>> abs(float(p.mean()) - 4.0) < 0.2  # white noise: NPS = SD^2 x pixel area
        True
    """
    power = nps_2d(noise, pixel_mm, roi, patch)
    fy, fx = _frequencies(power.shape, pixel_mm)
    f = np.hypot(fy, fx)
    bins = bins or max(8, min(power.shape) // 4)
    edges = np.linspace(0.0, 0.5 / pixel_mm, bins + 1)
    index = np.digitize(f.ravel(), edges) - 1
    valid = (index >= 0) & (index < bins)
    total = np.bincount(index[valid], weights=power.ravel()[valid], minlength=bins)
    count = np.bincount(index[valid], minlength=bins)
    return 0.5 * (edges[1:] + edges[:-1]), total / np.maximum(count, 1)


def nps_peak_mean(noise: np.ndarray, pixel_mm: float, roi: np.ndarray | None = None, patch: int = 32,
                  crop: float = 0.5) -> tuple[float, float]:
    """(peak, mean) frequency in lp/mm of the radial NPS (peak of a 3-bin running mean; mean = sum f P / sum P).

    Without ``roi``, the NPS is of the central ``crop`` fraction of each slice (side length).
    """
    stack = _stack(noise, "noise")
    if roi is None and crop < 1.0:
        ny, nx = stack.shape[-2:]
        cy, cx = int(round(ny * (1 - crop) / 2)), int(round(nx * (1 - crop) / 2))
        stack = stack[:, cy:ny - cy, cx:nx - cx]
    freq, power = radial_nps(stack, pixel_mm, roi, patch)
    smooth = np.convolve(power, np.ones(3) / 3.0, mode="same")
    return float(freq[int(np.argmax(smooth))]), float((freq * power).sum() / power.sum())


def streak_index(noise: np.ndarray, pixel_mm: float, sectors: int = 18, band: tuple[float, float] = (0.1, 0.7),
                 roi: np.ndarray | None = None, patch: int = 64) -> float:
    """Directional excess of the noise: NPS power of the strongest angular sector / the median sector's.

    The 2-D NPS in the radial ``band`` (fractions of Nyquist) is split into ``sectors`` over 180 degrees.
    Isotropic noise gives about 1; a streak (a line across the image) puts its power on the line through
    the origin perpendicular to it, so streaks raise the index. Quantum noise of an elongated body is
    already anisotropic, the same at every dose; streaks from photon starvation add to it at low dose.
    """
    power = nps_2d(noise, pixel_mm, roi, patch)
    fy, fx = _frequencies(power.shape, pixel_mm)
    f = np.hypot(fy, fx) * 2.0 * pixel_mm  # fraction of Nyquist
    angle = np.mod(np.arctan2(fy, fx), np.pi)
    sector = np.minimum((angle / np.pi * sectors).astype(int), sectors - 1)
    keep = (f >= band[0]) & (f <= band[1])
    totals = np.bincount(sector[keep], weights=power[keep], minlength=sectors)
    counts = np.bincount(sector[keep], minlength=sectors)
    means = totals / np.maximum(counts, 1)
    return float(means.max() / np.median(means))


@dataclasses.dataclass(frozen=True)
class EdgeProfile:
    """Edge spread function across a boundary: signed distance (mm, < 0 inside the mask) and mean HU."""

    distance_mm: np.ndarray
    esf: np.ndarray

    def normalized(self) -> np.ndarray:
        """The ESF scaled to 1 on the inner plateau (outer half of the inside) and 0 on the outer one."""
        d, reach = self.distance_mm, float(np.abs(self.distance_mm).max())
        inner = self.esf[d <= -reach / 2].mean()
        outer = self.esf[d >= reach / 2].mean()
        if abs(inner - outer) < 1e-6:
            raise ValueError("edge profile: no contrast across the boundary")
        return (self.esf - outer) / (inner - outer)


def edge_profile(image: np.ndarray, mask: np.ndarray, pixel_mm: float, reach_mm: float = 6.0,
                 bin_mm: float | None = None, min_pixels: int = 4, outside: np.ndarray | None = None) -> EdgeProfile:
    """Mean HU of pixels binned by in-plane signed distance to the boundary of ``mask`` (oversampled ESF).

    The distance is to the boundary at sub-pixel precision (the 0.5 contour of the mask smoothed by one
    pixel), so pixels of a curved or slanted boundary fall at many distances (an axis-parallel straight
    edge gives only whole-pixel samples and a coarser profile). Bins are ``bin_mm`` (a quarter pixel by
    default) wide within ``reach_mm`` of the boundary; bins with fewer than ``min_pixels`` pixels are dropped.
    ``outside``: the only pixels outside the mask that count (e.g. fat on a noise-free image, so that a
    neighbouring organ does not join the outer plateau), and inside only those whose nearest outside
    pixel is one of them; None: all pixels.
    """
    img = _stack(image).astype(np.float64)
    m = _stack(mask, "mask").astype(bool)
    if m.shape != img.shape:
        raise ValueError(f"edge_profile: mask shape {m.shape} differs from the image's {img.shape}")
    if not m.any() or m.all():
        raise ValueError("edge_profile: the mask has no boundary")
    signed = np.stack([_signed_distance(s, reach_mm / pixel_mm + 2.0) for s in m]) * pixel_mm
    bin_mm = bin_mm or pixel_mm / 4.0
    edges = np.arange(-reach_mm, reach_mm + bin_mm / 2, bin_mm)
    near = np.abs(np.nan_to_num(signed, nan=np.inf)) < reach_mm
    if outside is not None:
        allowed = _stack(outside, "outside").astype(bool)
        if allowed.shape != img.shape:
            raise ValueError(f"edge_profile: outside shape {allowed.shape} differs from the image's {img.shape}")
        near &= np.stack([_facing(s, a) for s, a in zip(m, allowed, strict=True)])
    index = np.digitize(signed[near], edges) - 1
    n = len(edges) - 1
    ok = (index >= 0) & (index < n)
    total = np.bincount(index[ok], weights=img[near][ok], minlength=n)
    count = np.bincount(index[ok], minlength=n)
    keep = count >= min_pixels
    centres = 0.5 * (edges[1:] + edges[:-1])
    return EdgeProfile(distance_mm=centres[keep], esf=total[keep] / count[keep])


def _facing(mask: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Pixels of one slice on an allowed stretch of the boundary: allowed outside pixels, and inside
    pixels whose nearest outside pixel is allowed (so the inner side of another boundary stays out too)."""
    _, (rows, cols) = ndimage.distance_transform_edt(mask, return_indices=True)
    return np.where(mask, allowed[rows, cols], allowed)


def _signed_distance(mask: np.ndarray, reach_px: float) -> np.ndarray:
    """In-plane distance (pixels) to the mask's sub-pixel boundary, < 0 inside; NaN beyond ``reach_px``."""
    from scipy.spatial import cKDTree
    from skimage.measure import find_contours

    smooth = ndimage.gaussian_filter(mask.astype(np.float64), 1.0)
    points = []
    for contour in find_contours(smooth, 0.5):
        seg = np.diff(contour, axis=0)
        steps = np.maximum(1, np.ceil(np.hypot(*seg.T) / 0.1).astype(int))
        for a, d, k in zip(contour[:-1], seg, steps, strict=True):
            points.append(a + d * (np.arange(k)[:, None] / k))
    out = np.full(mask.shape, np.nan)
    if not points:
        return out
    near = np.abs(np.where(mask, ndimage.distance_transform_edt(mask), ndimage.distance_transform_edt(~mask)))
    idx = np.nonzero(near <= reach_px)
    dist, _ = cKDTree(np.concatenate(points)).query(np.stack(idx, axis=1))
    out[idx] = np.where(smooth[idx] >= 0.5, -dist, dist)
    return out


def _crossing(d: np.ndarray, e: np.ndarray, level: float) -> float:
    """Distance where the (falling) normalized ESF first drops below ``level``, linearly interpolated."""
    below = np.nonzero(e < level)[0]
    below = below[below > 0]
    if not len(below):
        raise ValueError(f"edge profile never falls below {level:.0%} of the step")
    i = below[0]
    return float(d[i - 1] + (level - e[i - 1]) * (d[i] - d[i - 1]) / (e[i] - e[i - 1]))


def edge_width_mm(profile: EdgeProfile, low: float = 0.1, high: float = 0.9) -> float:
    """10-90 % rise distance (mm) of the edge (smaller is sharper); a Gaussian blur of SD s gives 2.563 s."""
    e = profile.normalized()
    e = np.minimum.accumulate(np.convolve(e, np.ones(3) / 3.0, mode="same")[1:-1])  # monotone, denoised
    d = profile.distance_mm[1:-1]
    return _crossing(d, e, low) - _crossing(d, e, high)


def mtf50_lp_mm(profile: EdgeProfile) -> float:
    """Frequency (lp/mm) where the MTF (|FT| of the ESF's derivative) falls to 0.5.

    The derivative (line spread function) is tapered over the outer half of the profile (Tukey window),
    which damps the noise of the plateaus; give a ``reach_mm`` of at least 4 blur SDs.
    """
    from scipy.signal.windows import tukey

    d, e = profile.distance_mm, profile.normalized()
    step = float(np.median(np.diff(d)))
    grid = np.arange(d[0], d[-1] + step / 2, step)
    lsf = -np.gradient(np.interp(grid, d, e), step)
    lsf *= tukey(len(lsf), 0.5)
    n = 8 * len(lsf)
    mtf = np.abs(np.fft.rfft(lsf, n=n))
    mtf /= mtf[0]
    f = np.fft.rfftfreq(n, d=step)
    return _crossing(f, mtf, 0.5)


def mae(image: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute difference (HU), within ``mask`` when given."""
    a, b = _stack(image), _stack(reference, "reference")
    if a.shape != b.shape:
        raise ValueError(f"mae: image shape {a.shape} differs from the reference's {b.shape}")
    diff = np.abs(a.astype(np.float64) - b)
    return float(diff[_stack(mask, "mask").astype(bool)].mean() if mask is not None else diff.mean())


def ssim(image: np.ndarray, reference: np.ndarray, data_range: float | None = None,
         mask: np.ndarray | None = None) -> float:
    """Mean SSIM (Gaussian window, sigma 1.5 px) of each slice against ``reference``, within ``mask`` if given.

    ``data_range`` (HU) defaults to the reference's range; give a fixed window (e.g. 400 HU) to compare
    studies. Images are clipped to ``[min(reference), min(reference) + data_range]`` first.
    """
    from skimage.metrics import structural_similarity

    a, b = _stack(image).astype(np.float64), _stack(reference, "reference").astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"ssim: image shape {a.shape} differs from the reference's {b.shape}")
    lo = float(b.min())
    span = float(b.max()) - lo if data_range is None else float(data_range)
    if span <= 0:
        raise ValueError("ssim: data_range must be > 0 (a constant reference has no range)")
    a, b = np.clip(a, lo, lo + span), np.clip(b, lo, lo + span)
    maps = np.stack([structural_similarity(x, y, data_range=span, gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False, full=True)[1]
                     for x, y in zip(a, b, strict=True)])
    return float(maps[_stack(mask, "mask").astype(bool)].mean() if mask is not None else maps.mean())
