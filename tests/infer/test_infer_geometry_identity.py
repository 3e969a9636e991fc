"""Conversion keeps identity and geometry: copies without UIDs convert twice into distinct outputs, tilted and
gapped series keep every slice's plane, policies set series aside with a results row, nothing is lost."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pandas as pd
import pydicom
import pytest

from ctharmony.archive import build_catalog
from ctharmony.infer.pipeline import ConvertOptions, convert_archive
from ctharmony.infer.policy import Policies
from testkit.synthetic_ct import VENDOR_TAGS as VENDORS
from testkit.synthetic_ct import write_ct_series

from .conftest import ensure_ray

pytestmark = pytest.mark.slow
TILT = math.radians(12.0)
NO_UIDS = {"SeriesInstanceUID": None, "StudyInstanceUID": None}


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("identity") / "archive"
    export = write_ct_series(root / "export-1", slices=4, rows=32, columns=32, tags=NO_UIDS, seed=1)
    shutil.copytree(export[0].parent, root / "export-2")  # the same anonymised export, stored twice
    write_ct_series(root / "tilted", slices=5, rows=32, columns=32, seed=2,
                    orientation=(1.0, 0.0, 0.0, 0.0, math.cos(TILT), -math.sin(TILT)),
                    positions=[(0.0, 0.0, 3.0 * k) for k in range(5)])
    write_ct_series(root / "gapped", slices=5, rows=32, columns=32, seed=3,
                    positions=[(0.0, 0.0, z) for z in (0.0, 2.0, 4.0, 10.8, 12.8)])
    for seed, (vendor, tags) in enumerate(sorted(VENDORS.items()), start=10):  # sparse real-world headers
        write_ct_series(root / f"vendor-{vendor}", slices=3, rows=32, columns=32, seed=seed, tags=tags)
    ensure_ray()
    catalog = build_catalog(root, root.parent / "catalog.parquet", progress=False)
    return root, catalog


def _output_positions(output_dir):
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(output_dir.glob("*.dcm"))]
    return {h.SourceImageSequence[0].ReferencedSOPInstanceUID: [float(v) for v in h.ImagePositionPatient]
            for h in headers}, {h.SeriesInstanceUID for h in headers}


def test_copies_convert_apart_and_geometry_survives(archive, model_paths, tmp_path):
    root, catalog = archive
    assert catalog["series_key"].is_unique and (catalog["status"] == "ok").sum() == 4 + len(VENDORS)
    copies = catalog[catalog["files"].map(lambda f: "/export-" in f[0])]
    assert len(copies) == 2 and copies["series_key"].nunique() == 2
    by_folder = {row.files[0].split("/")[-2]: row for row in catalog.itertuples()}
    assert by_folder["tilted"].geometry == "gantry tilt" and by_folder["tilted"].tilt_degrees == pytest.approx(12.0)
    assert by_folder["gapped"].largest_gap_mm == pytest.approx(6.8)

    results = convert_archive(root.parent / "catalog.parquet", model_paths[0], model_paths[1], tmp_path / "out",
                              options=ConvertOptions(batch_slices=4, progress_interval_s=0))
    assert sorted(results["series_key"]) == sorted(catalog["series_key"])
    assert (results["status"] == "done").all(), results[["series_key", "reason"]]
    assert results["output_series_uid"].nunique() == len(results)  # the two copies: two distinct derived series
    for row in results.itertuples():
        files = catalog.set_index("series_key").loc[row.series_key, "files"]
        source = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID):
                  [float(v) for v in pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient] for f in files}
        written, series_uids = _output_positions(pd.io.common.Path(row.output_dir))
        assert series_uids == {row.output_series_uid} and written.keys() == source.keys()
        for uid, position in source.items():
            np.testing.assert_allclose(written[uid], position, atol=0.01)
        mask = np.load(row.mask_original_path)
        np.testing.assert_allclose(mask["positions"], [source[u] for u in
                                   [str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files]],
                                   atol=1e-6)


def test_policies_set_series_aside_with_a_results_row(archive, model_paths, tmp_path):
    root, catalog = archive
    options = ConvertOptions(batch_slices=4, progress_interval_s=0,
                             policies=Policies(on_tilt="skip", on_gap="skip"))
    results = convert_archive(root.parent / "catalog.parquet", model_paths[0], model_paths[1], tmp_path / "out",
                              options=options).set_index("series_key")
    assert sorted(results.index) == sorted(catalog["series_key"])
    statuses = {row.files[0].split("/")[-2]: results.loc[row.series_key, "status"] for row in catalog.itertuples()}
    assert statuses == {"export-1": "done", "export-2": "done", "tilted": "skipped", "gapped": "skipped",
                        **{f"vendor-{vendor}": "done" for vendor in VENDORS}}
    reasons = results[results["status"] == "skipped"]["reason"]
    assert sorted(r.split(":")[0] for r in reasons) == ["policy on_gap=skip", "policy on_tilt=skip"]
