"""Tilted, gapped and unevenly spaced phantom series: their planes, their pixels, and dcm2niix's reading.

One small noise-free archive (64 x 64 x 12): a GE-like site with gantry tilt, a study with a gap, one
with uneven spacing. The phantom's truth at any physical point is the anatomy rendered there without
noise, so a misplaced slice shows up as a difference in HU.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from ctharmony.cli import app
from ctharmony.phantom import generate_archive
from ctharmony.phantom.cases import GAP_SLICES, GeometryCases
from ctharmony.phantom.truth import image_points, load_slice_mask, noise_free, noise_free_at
from ctharmony.scanmodel.grid import Grid
from ctharmony.scanmodel.sites import TILT_RANGE_DEG, make_sites
from testkit import geometry_reference as ref

SEED, SLICES, SIZE = 1, 12, 64


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("geometry")
    cases = GeometryCases(tilt_site=True, gap_studies=1, variable_spacing_studies=1)
    table = generate_archive(out, patients=3, slices=SLICES, size=SIZE, sites=1, seed=SEED, geometry=cases,
                             noise_sd=0.0)
    return out, table


def _study(archive, case: str):
    """(series folder of M80, params, site, intended grid) of the study with geometry ``case``."""
    out, table = archive
    for row in table.itertuples():
        params = json.loads(row.params)
        if params.get("geometry_case") == case:
            g = params["grid"]
            grid = Grid(shape=tuple(g["shape"]), spacing=tuple(g["spacing_zyx_mm"]), origin=tuple(g["origin_xyz_mm"]),
                        positions=tuple(map(tuple, g["positions_mm"])), tilt_deg=g["tilt_deg"])
            site = {s.name: s for s in make_sites(1, SEED, tilt=True)}[row.site]
            return out / "dicom" / row.site / row.patient_id / "M80", params, site, grid, row
    raise AssertionError(f"no {case} study in the archive")


def _hu(series: Path) -> np.ndarray:
    files = sorted(series.glob("*.dcm"), key=lambda f: float(pydicom.dcmread(f).ImagePositionPatient[2]))
    return np.stack([pydicom.dcmread(f).pixel_array.astype(np.float64) - 1024.0 for f in files])


def test_cases_are_assigned_and_the_default_has_none(archive):
    out, table = archive
    cases = [json.loads(p).get("geometry_case") for p in table.params]
    assert cases == ["gap", "tilt", "variable_spacing"]
    assert sorted(table.site) == ["site-a", "site-a", "site-tilt"]
    assert len(list((out / "masks").glob("*.slices.npz"))) == 3
    tilt = make_sites(1, SEED, tilt=True)[-1].gantry_tilt_deg
    assert TILT_RANGE_DEG[0] <= abs(tilt) <= TILT_RANGE_DEG[1]
    assert [s.name for s in make_sites(2, SEED)] == ["site-a", "site-b"]  # no tilt site unless asked
    with pytest.raises(ValueError, match="only 0 of 1 patients"):
        GeometryCases(gap_studies=1).assign(1, [True])


@pytest.mark.parametrize("case", ["tilt", "gap", "variable_spacing"])
def test_series_lie_on_the_intended_planes(archive, case):
    series, params, site, grid, row = _study(archive, case)
    positions, orientation, pixel_spacing, shape = ref.dicom_geometry(series)
    np.testing.assert_allclose(positions, grid.slice_positions(), atol=1e-6)
    np.testing.assert_allclose(orientation, grid.orientation(), atol=1e-9)
    steps = np.diff(positions[:, 2])
    nominal = grid.spacing[0]
    first = pydicom.dcmread(next(series.glob("*.dcm")), stop_before_pixels=True)
    if case == "tilt":
        assert float(first.GantryDetectorTilt) == pytest.approx(site.gantry_tilt_deg)
        t = np.radians(site.gantry_tilt_deg)
        np.testing.assert_allclose(orientation[3:], (0.0, np.cos(t), np.sin(t)), atol=1e-9)
        assert np.ptp(positions[:, :2], axis=0).max() == 0  # the table moves along z only: a sheared stack
        np.testing.assert_allclose(steps * np.cos(t), nominal, atol=2e-3)  # contiguous along the normal
    elif case == "gap":
        assert "GantryDetectorTilt" not in first
        assert sorted(np.round(steps / nominal, 6).tolist()) == [1.0] * (SLICES - 2) + [GAP_SLICES + 1.0]
    else:
        assert np.ptp(steps) > 0.2 * nominal and np.all((steps > 0.59 * nominal) & (steps < 1.41 * nominal))

    # pixels = the anatomy at those planes; an axial regular reading of the same files is far off
    hu = _hu(series)
    truth = noise_free(params, site, grid)["M80"]
    exact = float(np.abs(hu - truth).mean())
    assert exact < 0.3  # integer rounding only
    naive = Grid(shape=grid.shape, spacing=(float(np.median(steps)), *grid.spacing[1:]), origin=grid.origin)
    assert float(np.abs(hu - noise_free(params, site, naive)["M80"]).mean()) > 10 * exact

    # the true mask: the same slices and geometry; the NIfTI is the anatomy on the axial grid covering them
    out = series.parents[3]
    truth_mask = load_slice_mask(out / params["slice_mask_path"])
    np.testing.assert_allclose(truth_mask.positions, positions, atol=1e-6)
    np.testing.assert_allclose(truth_mask.orientation, orientation, atol=1e-9)
    assert truth_mask.mask.shape == shape and truth_mask.mask.any()
    voxel_ml = float(np.prod(pixel_spacing)) * truth_mask.slice_thickness / 1000.0
    assert row.liver_volume_ml == pytest.approx(truth_mask.mask.sum() * voxel_ml)
    nifti = sitk.ReadImage(str(out / row.mask_path))
    cover = params["regular_mask_grid"]
    assert nifti.GetSize() == tuple(cover["shape"][::-1]) and nifti.GetDirection() == (1, 0, 0, 0, 1, 0, 0, 0, 1)
    low, high = np.asarray(nifti.GetOrigin()), np.asarray(nifti.TransformIndexToPhysicalPoint(nifti.GetSize()))
    points = truth_mask.points()
    assert np.all(points.min(axis=(0, 1, 2)) >= low - 1e-3) and np.all(points.max(axis=(0, 1, 2)) <= high)


def test_dcm2niix_corrects_the_tilt(archive, tmp_path):
    series, params, site, grid, _ = _study(archive, "tilt")
    conversion = ref.dcm2niix_convert(series, tmp_path / "nii")
    assert [p.name for p in conversion.niftis] == ["series.nii", "series_Tilt_1.nii"]
    assert f"estimated from slice vector {-site.gantry_tilt_deg:g}" in conversion.log

    # the sheared NIfTI as dcm2niix places it (sform): the anatomy is where the headers say
    values, points = ref.sform_points(conversion.niftis[0])
    assert np.abs(values - noise_free_at(params, site, points)).mean() < 1.5

    # the tilt-corrected volume: slices stacked along the series' normal, as SimpleITK reads it (LPS)
    image = sitk.ReadImage(str(conversion.volume_path()), sitk.sitkFloat32)
    k_axis = np.asarray(image.GetDirection()).reshape(3, 3)[:, 2]
    assert abs(float(k_axis @ grid.normal())) > 0.9999
    corrected = np.abs(sitk.GetArrayFromImage(image) - noise_free_at(params, site, image_points(image))).mean()
    assert corrected < 20.0  # 64 px of 5 mm: in-plane interpolation of sharp edges dominates (see report)


@pytest.mark.parametrize("case", ["gap", "variable_spacing"])
def test_dcm2niix_on_uneven_slices(archive, tmp_path, case):
    series, params, site, grid, _ = _study(archive, case)
    conversion = ref.dcm2niix_convert(series, tmp_path / "nii")
    assert "Interslice distance varies" in conversion.log
    assert [p.name for p in conversion.niftis] == ["series.nii", "series_Eq_1.nii"]

    # the plain NIfTI assumes one step: slices are right up to the first uneven step, wrong after it
    values, points = ref.sform_points(conversion.niftis[0])
    error = np.abs(values - noise_free_at(params, site, points)).mean(axis=(1, 2))
    steps = np.diff(grid.slice_positions()[:, 2])
    good = int(np.argmax(np.abs(steps - steps[0]) > 1e-3)) + 1
    assert error[:good].max() < 0.3 and error[good:].mean() > 2.0

    # the equidistant volume: axial, spanning the series, linear between the source slices
    image = ref.dcm2niix_volume(series, tmp_path)
    z = image_points(image)[:, 0, 0, 2]
    source = grid.slice_positions()[:, 2]
    assert z[0] == pytest.approx(source[0], abs=0.01) and z[-1] == pytest.approx(source[-1], abs=0.01)
    assert image.GetSpacing()[2] < grid.spacing[0]
    assert np.abs(sitk.GetArrayFromImage(image) - noise_free_at(params, site, image_points(image))).mean() < 4.0


def test_cli_geometry_options(tmp_path):
    result = CliRunner().invoke(app, ["phantom", str(tmp_path / "a"), "--patients", "3", "--slices", "4",
                                      "--size", "32", "--sites", "1", "--tilt-site", "--gap-studies", "1",
                                      "--variable-spacing-studies", "1"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "a" / "dicom" / "site-tilt").is_dir()
    assert len(list((tmp_path / "a" / "masks").glob("*.slices.npz"))) == 3
    bad = CliRunner().invoke(app, ["phantom", str(tmp_path / "b"), "--patients", "1", "--gap-studies", "2"])
    assert bad.exit_code != 0 and "gap / variable-spacing studies" in bad.output
