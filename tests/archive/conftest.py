"""Fixtures for the archive tests: a small messy DICOM archive with every quarantine case, real data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import JPEG2000Lossless, MRImageStorage

from testkit.synthetic_ct import AXIAL, ct_slice_dataset, write_ct_series

IR_TAGS = {"SeriesDescription": "Abdomen PV 3.0 Br40 SAFIRE 3", "ConvolutionKernel": ["Br40", "3"]}
M40_TAGS = {"ImageType": ["DERIVED", "PRIMARY", "AXIAL", "MONOENERGETIC"],
            "SeriesDescription": "Abdomen PV Mono+ 40keV", "KVP": None, "InstitutionName": "Hospital B"}


def _one_slice(path: Path, **kwargs) -> Path:
    pixels = kwargs.pop("pixels", np.zeros((8, 8), np.uint16))
    ds = ct_slice_dataset(pixels, position=kwargs.pop("position", (0, 0, 0)), series_uid=kwargs.pop("series_uid"),
                          study_uid="1.2.3.4", frame_uid="1.2.3.5", **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture(scope="session")
def messy_archive(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """An archive holding good series and one of each problem; returns the root and what to expect."""
    base = tmp_path_factory.mktemp("messy")
    root = base / "archive"
    outside = base / "outside.dcm"
    expect: dict = {"root": root, "ok": {}, "quarantine": {}}
    expect["ok"]["fbp"] = write_ct_series(root / "site-a" / "p1" / "fbp", slices=4, series_uid="1.2.826.0.1.1")
    expect["ok"]["ir_j2k"] = write_ct_series(root / "site-a" / "p1" / "ir", slices=3, series_uid="1.2.826.0.1.2",
                                             rows=32, columns=32, tags=IR_TAGS, transfer_syntax=JPEG2000Lossless)
    expect["ok"]["m40"] = write_ct_series(root / "site-b" / "p2" / "m40", slices=3, series_uid="1.2.826.0.1.3",
                                          tags=M40_TAGS)
    # One SeriesInstanceUID holding an axial stack, a coronal reformat slice and a scout: split three ways.
    mixed = root / "site-b" / "p2" / "mixed"
    expect["ok"]["mixed_axial"] = write_ct_series(mixed, slices=3, series_uid="1.2.826.0.1.4")
    coronal = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
    expect["quarantine"]["split_single"] = [
        _one_slice(mixed / "coronal.dcm", series_uid="1.2.826.0.1.4", orientation=coronal)]
    expect["quarantine"]["scout"] = [_one_slice(mixed / "scout.dcm", series_uid="1.2.826.0.1.4",
                                                tags={"ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"]})]
    expect["ok"]["tilted"] = write_ct_series(
        root / "site-a" / "p3" / "tilt", series_uid="1.2.826.0.1.5",
        positions=[(0.0, 0.5 * k, 2.0 * k) for k in range(4)])
    expect["ok"]["gap"] = write_ct_series(
        root / "site-a" / "p3" / "gap", series_uid="1.2.826.0.1.6",
        positions=[(0.0, 0.0, z) for z in (0.0, 2.0, 4.0, 10.0, 12.0)])
    q = expect["quarantine"]
    notes = root / "site-a" / "notes.txt"
    notes.write_text("not an image\n", encoding="utf-8")
    q["not_dicom"] = [notes]
    good = expect["ok"]["fbp"][0].read_bytes()
    truncated = root / "site-a" / "p1" / "cut.dcm"
    truncated.write_bytes(good[: len(good) - 100])
    q["truncated"] = [truncated]
    no_pixels = ct_slice_dataset(np.zeros((8, 8), np.uint16), position=(0, 0, 0), series_uid="1.2.826.0.1.7",
                                 study_uid="1.2.3.4", frame_uid="1.2.3.5")
    del no_pixels.PixelData
    q["no_pixels"] = [root / "site-a" / "p1" / "nopix.dcm"]
    no_pixels.save_as(q["no_pixels"][0], enforce_file_format=True)
    short = ct_slice_dataset(np.zeros((8, 8), np.uint16), position=(0, 0, 0), series_uid="1.2.826.0.1.8",
                             study_uid="1.2.3.4", frame_uid="1.2.3.5")
    short.PixelData = b"\x00" * 20  # 20 bytes for an 8 x 8 x 16-bit image
    q["undecodable"] = [root / "site-a" / "p1" / "short.dcm"]
    short.save_as(q["undecodable"][0], enforce_file_format=True)
    q["mr"] = [
        _one_slice(root / "site-b" / "mr" / f"{k}.dcm", series_uid="1.2.826.0.1.9", position=(0, 0, k),
                   tags={"Modality": "MR", "SOPClassUID": MRImageStorage})
        for k in range(2)
    ]
    q["single"] = [_one_slice(root / "site-b" / "single" / "1.dcm", series_uid="1.2.826.0.1.10")]
    q["duplicate_positions"] = write_ct_series(
        root / "site-b" / "dup", series_uid="1.2.826.0.1.11", positions=[(0, 0, 0), (0, 0, 2.0), (0, 0, 2.0)])
    outside.write_bytes(good)
    (root / "site-a" / "escape.dcm").symlink_to(outside)
    (root / "site-a" / "broken.dcm").symlink_to(base / "missing.dcm")
    q["unsafe"] = [root / "site-a" / "escape.dcm", root / "site-a" / "broken.dcm"]
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "site-a" / "pipe.dcm")
        q["unsafe"].append(root / "site-a" / "pipe.dcm")
    expect["axial"] = AXIAL
    return expect


_REAL_CACHE: dict = {}


@pytest.fixture
def real_volume(real_data: Path):
    """The real Siemens series read with ``read_series`` (cached: read once per session)."""
    from ctharmony.archive.reader import read_series

    if "volume" not in _REAL_CACHE:
        files = sorted((real_data / "siemens-abdomen-ct").iterdir())
        _REAL_CACHE["volume"] = read_series(files)
    return _REAL_CACHE["volume"]


def _as_stored(value):
    """The value as written in the file (validators check text, not pydicom's DSfloat/IS/PN objects)."""
    original = getattr(value, "original_string", None)
    if original:
        return original
    if type(value).__name__ in ("DSfloat", "DSdecimal", "IS", "PersonName"):
        return str(value)
    return value


def strict_validate(path: Path) -> None:
    """Read ``path`` with pydicom in strict mode and validate every element value (raises on a problem)."""
    import pydicom
    from pydicom import config
    from pydicom.dataset import validate_file_meta
    from pydicom.valuerep import validate_value

    with config.strict_reading():
        ds = pydicom.dcmread(path)
        validate_file_meta(ds.file_meta, enforce_standard=True)

        def walk(dataset) -> None:
            for elem in dataset:
                if elem.VR == "SQ":
                    for item in elem.value:
                        walk(item)
                else:
                    values = elem.value if elem.VM > 1 else [elem.value]
                    for value in values:
                        validate_value(elem.VR, _as_stored(value), config.RAISE)

        walk(ds)


@pytest.fixture(scope="session")
def validate_dicom():
    """``strict_validate`` as a fixture (test modules cannot import conftest)."""
    return strict_validate
