"""The archive on disk: layout, DICOM that pydicom and SimpleITK read back, masks, table, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk
from scipy import ndimage

from ctharmony.phantom import PROTOCOLS, generate_archive
from ctharmony.phantom.generate import COLUMNS

PATIENTS, SLICES, SIZE, SITES = 4, 6, 64, 2


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("phantom")
    return out, generate_archive(out, patients=PATIENTS, slices=SLICES, size=SIZE, sites=SITES, seed=5, preview=True)


def _series_dir(out: Path, row, protocol: str) -> Path:
    return out / "dicom" / row.site / row.patient_id / protocol


def _read_sitk(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def _robust_sd(values: np.ndarray) -> float:
    """SD from the median absolute deviation (insensitive to the few vessel voxels in a liver ROI)."""
    values = values.astype(np.float64)
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


def test_layout_and_table(archive):
    out, table = archive
    assert list(table.columns) == COLUMNS
    assert table.equals(pd.read_parquet(out / "phantom.parquet"))
    assert len(table) == PATIENTS and table.patient_id.is_unique and table.study_uid.is_unique
    for row in table.itertuples():
        for protocol in PROTOCOLS:
            files = sorted(_series_dir(out, row, protocol).glob("*.dcm"))
            assert [f.name for f in files] == [f"{k:04d}.dcm" for k in range(1, SLICES + 1)]
        assert (out / row.mask_path).is_file()
        assert row.mask_path == f"masks/{row.study_uid}.nii.gz"
        params = json.loads(row.params)
        assert params["age_group"] == row.age_group
        assert 250 <= params["liver_total_volume_ml"] <= 2100
        assert 0 < row.liver_volume_ml <= params["liver_total_volume_ml"] * 1.05
    assert sorted(table.site.unique()) == ["site-a", "site-b"]
    png = (out / "preview.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_dicom_tags_per_protocol(archive):
    out, table = archive
    row = table.iloc[0]
    kernel = json.loads(row.params)["site"]["kernel"]
    headers = {p: pydicom.dcmread(_series_dir(out, row, p) / "0001.dcm") for p in PROTOCOLS}
    for protocol, ds in headers.items():
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.SeriesInstanceUID == row[f"series_uid_{protocol}"]
        assert ds.StudyInstanceUID == row.study_uid and ds.PatientID == row.patient_id
        assert ds.PatientID.startswith("PHANTOM-") and str(ds.PatientName) == ds.PatientID
        assert (ds.RescaleSlope, ds.RescaleIntercept) == (1, -1024)
        for uid in (ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.FrameOfReferenceUID):
            assert pydicom.uid.UID(uid).is_valid
    assert len({ds.FrameOfReferenceUID for ds in headers.values()}) == 1
    assert len({ds.SeriesInstanceUID for ds in headers.values()}) == 6
    assert list(headers["FBP"].ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]
    assert headers["FBP"].SeriesDescription == f"Abdomen PV 3.0 {kernel} FBP"
    assert headers["FBP"].ConvolutionKernel == kernel
    assert headers["IR"].SeriesDescription == f"Abdomen PV 3.0 {kernel} SAFIRE 3"
    assert list(headers["IR"].ConvolutionKernel) == [kernel, "3"]
    for kev in (40, 60, 80):
        ds = headers[f"M{kev}"]
        assert list(ds.ImageType) == ["DERIVED", "PRIMARY", "AXIAL", "MONOENERGETIC"]
        assert ds.SeriesDescription == f"Abdomen PV Mono+ {kev}keV" and ds.KVP in (None, "")
    assert list(headers["OPT"].ImageType)[:3] == ["DERIVED", "PRIMARY", "AXIAL"]
    assert headers["OPT"].SeriesDescription == "Abdomen PV DE Optimum Contrast"
    assert float(headers["FBP"].KVP) == 120.0


def test_sites_are_heterogeneous(archive):
    out, table = archive
    first = {}
    for row in table.itertuples():
        ds = pydicom.dcmread(_series_dir(out, row, "FBP") / "0001.dcm", stop_before_pixels=True)
        first.setdefault(row.site, ds)
    a, b = first["site-a"], first["site-b"]
    assert (a.ManufacturerModelName, a.ConvolutionKernel) != (b.ManufacturerModelName, b.ConvolutionKernel)
    assert a.Manufacturer != b.Manufacturer
    assert float(a.SliceThickness) != float(b.SliceThickness)


def test_pydicom_and_simpleitk_agree_on_geometry_and_pixels(archive):
    out, table = archive
    for row in table.itertuples():
        reference = None
        for protocol in PROTOCOLS:
            folder = _series_dir(out, row, protocol)
            image = _read_sitk(folder)
            geometry = (image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection())
            reference = reference or geometry
            assert geometry == reference  # all six series share the grid
            datasets = [pydicom.dcmread(f) for f in sorted(folder.glob("*.dcm"))]
            z = [float(ds.ImagePositionPatient[2]) for ds in datasets]
            assert np.allclose(np.diff(z), float(datasets[0].SliceThickness))
            assert image.GetOrigin() == pytest.approx(tuple(float(v) for v in datasets[0].ImagePositionPatient))
            assert image.GetSpacing() == pytest.approx(
                (*(float(v) for v in datasets[0].PixelSpacing[::-1]), float(datasets[0].SliceThickness)))
            hu = np.stack([ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in datasets])
            np.testing.assert_array_equal(sitk.GetArrayFromImage(image), hu)
        mask = sitk.ReadImage(str(out / row.mask_path))
        assert (mask.GetSize(), mask.GetSpacing()) == (reference[0], pytest.approx(reference[1]))
        assert mask.GetOrigin() == pytest.approx(reference[2], abs=1e-4)


def test_mask_overlays_the_liver_and_liver_hu_matches_paper(archive):
    out, table = archive
    paper = {"M40": 190.0, "M60": 110.0, "M80": 80.0}
    means = {p: [] for p in paper}
    for row in table.itertuples():
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(out / row.mask_path))).astype(bool)
        assert mask.any()
        spacing = json.loads(row.params)["grid"]["spacing_zyx_mm"]
        assert row.liver_volume_ml == pytest.approx(mask.sum() * np.prod(spacing) / 1000.0)
        core = ndimage.binary_erosion(mask, iterations=1)
        truth = json.loads(row.params)["liver_hu_measured"]
        for protocol in paper:
            hu = sitk.GetArrayFromImage(_read_sitk(_series_dir(out, row, protocol)))
            assert hu[core].mean() == pytest.approx(truth[protocol], rel=0.1)  # the mask sits on the liver
            ring = ndimage.binary_dilation(mask, iterations=3) & ~ndimage.binary_dilation(mask, iterations=1)
            assert abs(hu[core].mean() - hu[ring].mean()) > 20  # and its border is a real edge
            means[protocol].append(float(hu[core].mean()))
        assert means["M40"][-1] > means["M60"][-1] > means["M80"][-1]
        # the stored images carry the noise: IR quieter than FBP, M40 the noisiest (robust SD in the liver)
        sd = {p: _robust_sd(sitk.GetArrayFromImage(_read_sitk(_series_dir(out, row, p)))[core]) for p in PROTOCOLS}
        assert 11.0 <= sd["FBP"] <= 18.0 and sd["IR"] < sd["FBP"] and sd["M40"] > 1.5 * sd["FBP"]
    for protocol, value in paper.items():
        assert np.mean(means[protocol]) == pytest.approx(value, rel=0.15)


def test_same_seed_is_byte_identical_and_other_seed_differs(archive, tmp_path):
    out, table = archive
    again = generate_archive(tmp_path / "again", patients=1, slices=SLICES, size=SIZE, sites=SITES, seed=5)
    other = generate_archive(tmp_path / "other", patients=1, slices=SLICES, size=SIZE, sites=SITES, seed=6)
    assert again.study_uid.tolist() == table.study_uid.tolist()[:1]
    for row in again.itertuples():
        for protocol in PROTOCOLS:
            for f in sorted(_series_dir(tmp_path / "again", row, protocol).glob("*.dcm")):
                original = pydicom.dcmread(_series_dir(out, row, protocol) / f.name)
                copy = pydicom.dcmread(f)
                assert copy.PixelData == original.PixelData
                assert copy.SOPInstanceUID == original.SOPInstanceUID
    assert set(other.study_uid).isdisjoint(table.study_uid)
    mask_a = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "again" / again.mask_path[0])))
    mask_b = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "other" / other.mask_path[0])))
    assert mask_a.shape != mask_b.shape or not np.array_equal(mask_a, mask_b)
    assert json.loads(other.params[0])["body_semi_axes_mm"] != json.loads(again.params[0])["body_semi_axes_mm"]


def test_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="patients must be >= 1"):
        generate_archive(tmp_path, patients=0)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder", encoding="utf-8")
    with pytest.raises(OSError):
        generate_archive(blocker / "sub", patients=1, slices=2, size=32)


@pytest.mark.slow
def test_parallel_workers_give_the_same_archive(tmp_path):
    serial = generate_archive(tmp_path / "serial", patients=2, slices=2, size=32, sites=2, seed=9)
    parallel = generate_archive(tmp_path / "parallel", patients=2, slices=2, size=32, sites=2, seed=9, workers=2)
    pd.testing.assert_frame_equal(serial, parallel)
    for f in sorted((tmp_path / "serial" / "dicom").rglob("*.dcm")):
        assert f.read_bytes() == (tmp_path / "parallel" / f.relative_to(tmp_path / "serial")).read_bytes()
