"""The catalog on a phantom archive: every file accounted for, all six protocols classified correctly."""

from __future__ import annotations

import os

import pandas as pd

from ctharmony.archive.catalog import build_catalog

PROTOCOLS = ("FBP", "IR", "M40", "M60", "M80", "OPT")


def test_phantom_archive_catalog(ray_local, tmp_path):
    from ctharmony.phantom import generate_archive

    truth = generate_archive(tmp_path / "ph", patients=2, slices=4, size=32, sites=2)
    df = build_catalog(tmp_path / "ph", tmp_path / "catalog.parquet", chunk_size=16, progress=False)

    every = sorted(os.path.join(d, f) for d, _, files in os.walk(os.path.realpath(tmp_path / "ph")) for f in files)
    listed = [f for files in df["files"] for f in files]
    assert sorted(listed) == every and len(listed) == len(set(listed))

    ok = df[df["status"] == "ok"]
    dicom = [f for f in every if f.endswith(".dcm")]
    assert sorted(f for files in ok["files"] for f in files) == sorted(dicom)
    quarantined = df[df["status"] == "quarantined"]
    assert set(quarantined["reason"].str.split(":").str[0]) == {"not a DICOM file"}  # masks + phantom.parquet

    by_uid = ok.set_index("series_uid")
    for _, patient in truth.iterrows():
        for protocol in PROTOCOLS:
            row = by_uid.loc[patient[f"series_uid_{protocol}"]]
            assert row["protocol"] == protocol, (protocol, row["protocol_rule"], row["series_description"])
            assert row["slices"] == 4 and row["study_uid"] == patient["study_uid"]
            assert row["patient_key"] != patient["patient_id"] and len(row["patient_key"]) == 24
    assert len(ok) == 6 * len(truth)
    assert isinstance(df, pd.DataFrame) and df["series_key"].is_unique
