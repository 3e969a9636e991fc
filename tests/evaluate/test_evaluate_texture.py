"""Image-quality measures on synthetic images with known answers (white noise, band-limited noise, blurred edges)."""

import numpy as np
import pytest
from scipy import ndimage

from ctharmony.evaluate import texture

RNG = np.random.default_rng(7)


def _disk(n: int, radius: float, centre: tuple[float, float] | None = None) -> np.ndarray:
    cy, cx = centre or ((n - 1) / 2.0, (n - 1) / 2.0)
    yy, xx = np.mgrid[:n, :n]
    return np.hypot(yy - cy, xx - cx) < radius


def test_white_noise_has_a_flat_nps_of_known_level_and_mean_frequency():
    sd, pixel = 12.0, 0.8
    noise = RNG.normal(0.0, sd, (16, 64, 64))
    f, nps = texture.radial_nps(noise, pixel)
    assert f[-1] < 0.5 / pixel
    assert float(nps.mean()) == pytest.approx(sd**2 * pixel**2, rel=0.03)
    assert float(nps[-4:].mean() / nps[1:5].mean()) == pytest.approx(1.0, abs=0.1)  # flat
    _, mean = texture.nps_peak_mean(noise, pixel, crop=1.0)
    assert mean == pytest.approx(0.25 / pixel, rel=0.02)  # mean of a flat radial NPS over [0, Nyquist]


def test_band_limited_noise_peaks_at_its_band():
    pixel, f0 = 1.0, 0.2
    white = RNG.normal(size=(8, 128, 128))
    fy = np.fft.fftfreq(128, d=pixel)[:, None]
    fx = np.fft.fftfreq(128, d=pixel)[None, :]
    ring = np.exp(-(((np.hypot(fy, fx) - f0) / 0.03) ** 2))
    noise = np.real(np.fft.ifft2(np.fft.fft2(white) * ring))
    peak, mean = texture.nps_peak_mean(noise, pixel, crop=1.0)
    assert peak == pytest.approx(f0, abs=0.02)
    assert mean == pytest.approx(f0, abs=0.03)


def test_nps_from_roi_patches_matches_whole_slices_and_refuses_a_tiny_roi():
    sd, pixel = 5.0, 1.0
    noise = RNG.normal(0.0, sd, (4, 96, 96))
    roi = np.broadcast_to(_disk(96, 40), noise.shape)
    _, nps = texture.radial_nps(noise, pixel, roi=roi, patch=24)
    assert float(nps.mean()) == pytest.approx(sd**2, rel=0.05)
    with pytest.raises(ValueError, match="no 24 x 24 patch fits"):
        texture.radial_nps(noise, pixel, roi=np.broadcast_to(_disk(96, 8), noise.shape), patch=24)


def test_streak_index_is_one_for_isotropic_noise_and_grows_with_streaks():
    noise = RNG.normal(0.0, 10.0, (8, 128, 128))
    iso = texture.streak_index(noise, 1.0, patch=128)
    rows = RNG.normal(0.0, 3.0, (8, 128, 1)) * np.ones((1, 1, 128))  # horizontal lines across the slice
    streaky = texture.streak_index(noise + rows, 1.0, patch=128)
    assert iso < 1.3
    assert streaky > 2.0 * iso


@pytest.mark.parametrize("sigma_px", [1.5, 3.0])
def test_gaussian_blurred_edge_width_and_mtf50(sigma_px):
    pixel, n = 0.7, 160
    mask = _disk(n, 50.0)
    step = np.where(mask, 100.0, -50.0)[None].astype(np.float64)
    image = ndimage.gaussian_filter(step, (0, sigma_px, sigma_px))
    profile = texture.edge_profile(image, np.broadcast_to(mask, image.shape), pixel, reach_mm=8 * sigma_px * pixel)
    sigma_mm = sigma_px * pixel
    assert texture.edge_width_mm(profile) == pytest.approx(texture.GAUSS_10_90 * sigma_mm, rel=0.06)
    assert texture.mtf50_lp_mm(profile) == pytest.approx(texture.GAUSS_MTF50 / sigma_mm, rel=0.06)


def test_edge_width_survives_noise_and_orders_blur():
    pixel, n = 1.0, 128
    mask = np.broadcast_to(_disk(n, 40.0), (4, n, n))
    widths = []
    for sigma in (1.0, 2.5):
        image = ndimage.gaussian_filter(np.where(mask, 60.0, -100.0), (0, sigma, sigma)) + RNG.normal(0, 10, mask.shape)
        widths.append(texture.edge_width_mm(texture.edge_profile(image, mask, pixel, reach_mm=10.0)))
    assert widths[1] == pytest.approx(texture.GAUSS_10_90 * 2.5, rel=0.12)
    assert widths[0] < 0.6 * widths[1]


def test_edge_width_against_fat_only_keeps_a_neighbouring_organ_out():
    """A liver disk with an organ 6 px beyond its right half: the organ lifts the outer plateau of the whole
    profile and shrinks the width; counting only the liver-fat boundary gives the true width back."""
    pixel, n, sigma = 1.0, 128, 2.0
    yy, xx = np.mgrid[:n, :n]
    radius = np.hypot(yy - 63.5, xx - 63.5)
    liver = np.broadcast_to(radius < 30.0, (2, n, n))
    organ = ~liver & (xx > 63) & (radius > 36.0) & (radius < 50.0)
    truth = np.where(organ, 150.0, np.where(liver, 60.0, -100.0))
    image = ndimage.gaussian_filter(truth, (0, sigma, sigma)) + RNG.normal(0, 5, truth.shape)
    true_width = texture.GAUSS_10_90 * sigma
    every = texture.edge_width_mm(texture.edge_profile(image, liver, pixel, reach_mm=10.0))
    fat_only = texture.edge_width_mm(texture.edge_profile(image, liver, pixel, reach_mm=10.0,
                                                          outside=(truth > -150) & (truth < -50)))
    assert fat_only == pytest.approx(true_width, rel=0.15)
    assert every < 0.7 * true_width
    with pytest.raises(ValueError, match="outside shape"):
        texture.edge_profile(image, liver, pixel, outside=np.ones((n, n), bool)[None, :10])


def test_edge_profile_needs_a_boundary_and_contrast():
    with pytest.raises(ValueError, match="no boundary"):
        texture.edge_profile(np.zeros((8, 8)), np.ones((8, 8), bool), 1.0)
    flat = texture.edge_profile(np.zeros((32, 32)), _disk(32, 10), 1.0, reach_mm=4.0)
    with pytest.raises(ValueError, match="no contrast"):
        texture.edge_width_mm(flat)


def test_uniform_roi_removes_vessels_and_border_and_noise_sd_uses_the_reference():
    n, pixel = 96, 1.0
    liver = _disk(n, 35)
    vessel = _disk(n, 6, (48, 60))
    clean = np.where(liver, 60.0, -100.0) + np.where(vessel, 120.0, 0.0)
    noisy = clean + RNG.normal(0.0, 15.0, (3, n, n))
    roi = texture.uniform_roi(np.broadcast_to(liver, noisy.shape), pixel, erode_mm=4.0, image=noisy,
                              hu_band=(-20.0, 140.0))
    by_truth = texture.uniform_roi(np.broadcast_to(liver, noisy.shape), pixel, erode_mm=4.0,
                                   exclude=np.broadcast_to(vessel, noisy.shape))
    assert not roi[:, vessel].any() or roi[:, vessel].mean() < 0.05  # the band drops the bright vessel
    assert not by_truth[:, vessel].any()
    assert not by_truth[:, ~_disk(n, 32)].any()  # eroded by 4 mm
    reference = np.broadcast_to(clean, noisy.shape)
    assert texture.noise_sd(noisy, by_truth, reference=reference) == pytest.approx(15.0, rel=0.05)
    smoothed = texture.noise_sd(noisy, by_truth, pixel_mm=pixel, smooth_mm=3.0)  # no reference: detrended
    assert smoothed == pytest.approx(15.0, rel=0.1)


def test_mae_and_ssim_against_a_reference():
    ref = ndimage.gaussian_filter(RNG.normal(0.0, 80.0, (2, 64, 64)), (0, 2, 2))
    assert texture.mae(ref + 5.0, ref) == pytest.approx(5.0)
    assert texture.ssim(ref, ref) == pytest.approx(1.0)
    mild = texture.ssim(ref + RNG.normal(0, 5, ref.shape), ref)
    strong = texture.ssim(ref + RNG.normal(0, 20, ref.shape), ref)
    assert 1.0 > mild > strong
    mask = np.zeros(ref.shape, bool)
    mask[:, 10:30, 10:30] = True
    assert texture.mae(np.where(mask, ref, ref + 50.0), ref, mask) == pytest.approx(0.0)
    with pytest.raises(ValueError, match=r"differs from the reference's \(2, 64, 64\)"):
        texture.ssim(ref[:, :32], ref)
