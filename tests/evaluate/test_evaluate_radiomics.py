"""Radiomic features against independent references: the IBSI digital phantom's consensus values, scikit-image's
GLCM properties and scipy.stats' moments."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from scipy import stats as scipy_stats
from skimage.feature import graycomatrix, graycoprops

from ctharmony.evaluate import radiomics

# The IBSI 1 digital phantom (z, y, x), 2 mm voxels, and its ROI mask: Zwanenburg et al., the Image Biomarker
# Standardisation Initiative, CC BY 4.0 (theibsi/data_sets, ibsi_1_digital_phantom).
PHANTOM = np.array([
    [[1, 4, 4, 1, 1], [1, 4, 6, 1, 1], [4, 1, 6, 4, 1], [4, 4, 6, 4, 1]],
    [[1, 4, 4, 1, 1], [1, 1, 6, 1, 1], [1, 1, 3, 1, 1], [4, 4, 6, 1, 1]],
    [[1, 4, 4, 1, 1], [1, 1, 1, 1, 1], [1, 1, 9, 1, 1], [1, 1, 6, 1, 1]],
    [[1, 4, 4, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 6, 1, 1]],
], float)
PHANTOM_ROI = np.ones(PHANTOM.shape, bool)
PHANTOM_ROI[1, 2, 0] = PHANTOM_ROI[2, 0, 3:] = PHANTOM_ROI[3, 0, 3:] = PHANTOM_ROI[2, 2, 2] = False

# IBSI consensus values for the phantom (reference manual, 3 significant digits): intensity statistics and
# histogram over the ROI; texture with "2.5D, merged" aggregation (GLCM, GLRLM) or "2.5D" (GLSZM, NGTDM).
IBSI = {
    "firstorder_mean": 2.15, "firstorder_variance": 3.05, "firstorder_skewness": 1.08, "firstorder_kurtosis": -0.355,
    "firstorder_median": 1, "firstorder_minimum": 1, "firstorder_p10": 1, "firstorder_p90": 4,
    "firstorder_maximum": 6, "firstorder_iqr": 3, "firstorder_range": 5, "firstorder_mad": 1.55,
    "firstorder_rmad": 1.11, "firstorder_medad": 1.15, "firstorder_cov": 0.812, "firstorder_qcod": 0.6,
    "firstorder_energy": 567, "firstorder_rms": 2.77, "firstorder_entropy": 1.27, "firstorder_uniformity": 0.512,
    "glcm_joint_max": 0.492, "glcm_joint_average": 2.2, "glcm_joint_variance": 3.24, "glcm_joint_entropy": 2.61,
    "glcm_diff_average": 1.44, "glcm_diff_variance": 3.23, "glcm_diff_entropy": 1.67, "glcm_sum_average": 4.41,
    "glcm_sum_variance": 7.65, "glcm_sum_entropy": 2.14, "glcm_asm": 0.277, "glcm_contrast": 5.29,
    "glcm_dissimilarity": 1.44, "glcm_inv_diff": 0.673, "glcm_inv_diff_norm": 0.85, "glcm_inv_diff_moment": 0.613,
    "glcm_inv_diff_moment_norm": 0.899, "glcm_inv_variance": 0.0582, "glcm_correlation": 0.182,
    "glcm_autocorrelation": 5.45, "glcm_cluster_tendency": 7.65, "glcm_cluster_shade": 16.4,
    "glcm_cluster_prominence": 142, "glcm_imc1": -0.0334, "glcm_imc2": 0.291,
    "glrlm_sre": 0.68, "glrlm_lre": 3.27, "glrlm_lgre": 0.585, "glrlm_hgre": 10.2, "glrlm_srlge": 0.312,
    "glrlm_srhge": 9.05, "glrlm_lrlge": 2.63, "glrlm_lrhge": 17, "glrlm_glnu": 77.1, "glrlm_glnu_norm": 0.412,
    "glrlm_rlnu": 83.2, "glrlm_rlnu_norm": 0.445, "glrlm_run_percentage": 0.632, "glrlm_gl_variance": 3.59,
    "glrlm_rl_variance": 0.767, "glrlm_run_entropy": 2.76,
    "glszm_sze": 0.368, "glszm_lze": 34.2, "glszm_lgze": 0.368, "glszm_hgze": 16.2, "glszm_szlge": 0.0295,
    "glszm_szhge": 9.87, "glszm_lzlge": 30.6, "glszm_lzhge": 107, "glszm_glnu": 5.44, "glszm_glnu_norm": 0.302,
    "glszm_zsnu": 3.44, "glszm_zsnu_norm": 0.191, "glszm_zone_percentage": 0.243, "glszm_gl_variance": 3.92,
    "glszm_zs_variance": 17.3, "glszm_zone_entropy": 3.08,
    "ngtdm_coarseness": 0.0285, "ngtdm_contrast": 0.601, "ngtdm_busyness": 6.8, "ngtdm_complexity": 14.1,
    "ngtdm_strength": 0.741,
}


def _significant(value: float, digits: int = 3) -> float:
    return float(f"{value:.{digits}g}") if value else 0.0


def test_every_feature_matches_the_ibsi_digital_phantom():
    values = radiomics.features(PHANTOM, PHANTOM_ROI, bin_width=1.0, lower=1.0)  # grey levels = the phantom's
    assert list(values) == radiomics.feature_names() and set(values) == set(IBSI)
    wrong = {name: (round(values[name], 5), ref) for name, ref in IBSI.items()
             if abs(values[name] - ref) > 0.006 * abs(ref) and _significant(values[name]) != ref}
    assert not wrong, wrong


def _textured(rng: np.random.Generator, shape=(3, 40, 48), sd: float = 40.0) -> np.ndarray:
    return 50.0 + ndimage.gaussian_filter(rng.normal(0.0, sd, shape), (0, 1.2, 1.2)) * 3


def test_glcm_agrees_with_scikit_image():
    rng = np.random.default_rng(4)
    image = _textured(rng)
    values = radiomics.features(image, np.ones(image.shape, bool))
    levels = radiomics.discretise(image)
    lo = int(levels.min())
    counts = sum(graycomatrix((s - lo).astype(np.uint8), [1], [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4],
                              levels=int(levels.max()) - lo + 1, symmetric=True).sum(axis=3, keepdims=True)
                 for s in levels)  # merged over the 4 directions and the slices
    expected = {"contrast": "glcm_contrast", "dissimilarity": "glcm_dissimilarity", "ASM": "glcm_asm",
                "homogeneity": "glcm_inv_diff_moment", "correlation": "glcm_correlation"}
    for prop, name in expected.items():
        assert values[name] == pytest.approx(float(graycoprops(counts, prop)[0, 0]), rel=1e-9), prop
    assert values["glcm_joint_average"] == pytest.approx(float(graycoprops(counts, "mean")[0, 0]) + lo)
    assert values["glcm_joint_variance"] == pytest.approx(float(graycoprops(counts, "variance")[0, 0]))
    assert values["glcm_joint_entropy"] == pytest.approx(float(graycoprops(counts, "entropy")[0, 0]) / math.log(2))


def test_first_order_agrees_with_scipy_stats():
    rng = np.random.default_rng(5)
    image = _textured(rng) + rng.gamma(2.0, 15.0, (3, 40, 48))  # skewed
    roi = np.zeros(image.shape, bool)
    roi[:, 5:35, 8:40] = True
    values = radiomics.features(image, roi)
    x = image[roi]
    assert values["firstorder_skewness"] == pytest.approx(scipy_stats.skew(x))
    assert values["firstorder_kurtosis"] == pytest.approx(scipy_stats.kurtosis(x, fisher=True))
    assert values["firstorder_iqr"] == pytest.approx(scipy_stats.iqr(x))
    assert values["firstorder_cov"] == pytest.approx(scipy_stats.variation(x))
    _, counts = np.unique(np.floor((x + 1000.0) / 25.0), return_counts=True)
    assert values["firstorder_entropy"] == pytest.approx(scipy_stats.entropy(counts, base=2))
    assert values["firstorder_uniformity"] == pytest.approx(((counts / counts.sum()) ** 2).sum())


def test_bins_are_fixed_in_hu_and_noise_roughens_the_texture():
    rng = np.random.default_rng(6)
    image = _textured(rng, sd=20.0)
    roi = np.ones(image.shape, bool)
    base = radiomics.features(image, roi)
    shifted = radiomics.features(image + radiomics.BIN_WIDTH_HU, roi)  # one bin up, same pattern
    assert shifted["glcm_joint_average"] == pytest.approx(base["glcm_joint_average"] + 1)
    for name in ("glcm_contrast", "glrlm_sre", "glszm_zone_percentage", "ngtdm_contrast"):
        assert shifted[name] == pytest.approx(base[name]), name
    noisy = radiomics.features(image + rng.normal(0.0, 30.0, image.shape), roi)
    assert noisy["glcm_contrast"] > 2 * base["glcm_contrast"]
    assert noisy["glszm_zone_percentage"] > base["glszm_zone_percentage"]
    assert noisy["ngtdm_coarseness"] < base["ngtdm_coarseness"]
    assert noisy["firstorder_variance"] > base["firstorder_variance"]


def test_slab_regions_and_empty_ones():
    mask = np.zeros((9, 6, 6), bool)
    for z, size in enumerate([1, 2, 3, 4, 6, 4, 3, 2, 1]):
        mask[z, :size, :size] = True
    slab = radiomics.slab(mask, slices=3)
    assert np.flatnonzero(slab.any(axis=(1, 2))).tolist() == [3, 4, 5] and (slab <= mask).all()
    assert radiomics.slab(mask[:2], slices=5).sum() == mask[:2].sum()  # fewer slices than asked: all of them
    assert not radiomics.slab(np.zeros((3, 4, 4), bool)).any()
    empty = radiomics.features(np.zeros((2, 4, 4)), np.zeros((2, 4, 4), bool))
    assert all(math.isnan(v) for v in empty.values())
    with pytest.raises(ValueError, match="roi shape"):
        radiomics.features(np.zeros((2, 4, 4)), np.ones((2, 4, 5), bool))
    single = radiomics.features(np.full((4, 4), 40.0), np.ones((4, 4), bool))  # one grey level, 2-D input
    assert single["glcm_contrast"] == 0 and single["firstorder_variance"] == 0
    assert single["ngtdm_coarseness"] == radiomics.MAX_COARSENESS
