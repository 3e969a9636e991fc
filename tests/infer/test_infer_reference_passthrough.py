"""Reference-protocol (M80) series pass through the conversion unchanged (the realistic benchmark asks it).

Plain-batch tests check the predictors (the model never sees a passed-through series); the slow test
converts a real phantom archive on the local Ray cluster with a real harmonizer and a TorchScript
segmenter (a soft-tissue threshold, so its masks hold both classes and react to any HU change), reads
the written DICOM back and compares it with the source, then converts M80 again with the pass-through off.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import torch
import yaml

from ctharmony.archive.protocols import REFERENCE_PROTOCOL
from ctharmony.infer.pipeline import ConvertOptions
from ctharmony.infer.predictors import HarmonizerPredictor, SegmenterPredictor


class _Counting(torch.nn.Module):
    """Adds 7 HU and counts the slices it is given (a harmonizer whose use is visible)."""

    info = {"name": "counting", "version": "1"}

    def __init__(self) -> None:
        super().__init__()
        self.slices = 0

    def forward(self, x):
        self.slices += int(x.shape[0])
        return x + 7.0


class _Threshold(torch.nn.Module):
    """A segmenter on a [0, 1] HU window: probability ~1 above ``level`` (a soft-tissue threshold)."""

    def __init__(self, level: float = 0.5) -> None:
        super().__init__()
        self.level = level

    def forward(self, x):
        return torch.sigmoid((x - self.level) * 400.0)


def _batch(protocols, volumes):
    return {"series_key": np.array([f"s{i}" for i in range(len(volumes))]), "protocol": np.array(protocols),
            "hu": np.stack(volumes), "status": np.array(["ok"] * len(volumes)),
            "reason": np.array([""] * len(volumes))}


def test_the_harmonizer_hands_reference_series_on_bit_for_bit_without_the_model():
    rng = np.random.default_rng(0)
    m80, m40 = (rng.normal(40, 300, (3, 16, 16)).astype(np.float32) for _ in range(2))
    model = _Counting()
    out = HarmonizerPredictor(model, device="cpu", passthrough_protocol=REFERENCE_PROTOCOL)(
        _batch([REFERENCE_PROTOCOL, "M40"], [m80, m40]))
    assert out["harmonizer_action"].tolist() == ["passthrough", "harmonized"]
    assert out["hu_harmonized"][0].tobytes() == m80.tobytes()  # bit for bit
    np.testing.assert_allclose(out["hu_harmonized"][1], m40 + 7.0)
    assert model.slices == len(m40)  # only the M40 slices reached the model

    off = HarmonizerPredictor(model, device="cpu")(_batch([REFERENCE_PROTOCOL], [m80]))  # no pass-through
    assert off["harmonizer_action"].tolist() == ["harmonized"]
    np.testing.assert_allclose(off["hu_harmonized"][0], m80 + 7.0)
    failed = HarmonizerPredictor(model, device="cpu", passthrough_protocol="M80")(
        {**_batch(["M80"], [m80]), "status": np.array(["failed"])})
    assert failed["harmonizer_action"].tolist() == [""]  # a row that never reached the stage


def test_the_segmenter_reuses_the_original_mask_of_a_passed_through_series():
    volume = np.linspace(-200, 200, 4 * 8 * 8, dtype=np.float32).reshape(4, 8, 8)
    segmenter = SegmenterPredictor(_Threshold(), device="cpu")
    batch = {**_batch(["M80", "M40"], [volume, volume]), "hu_harmonized": np.stack([volume, volume + 150]),
             "harmonizer_action": np.array(["passthrough", "harmonized"])}
    out = segmenter(batch)
    assert 0 < out["mask_original"][0].sum() < volume.size  # both classes
    np.testing.assert_array_equal(out["mask_harmonized"][0], out["mask_original"][0])
    assert out["mask_harmonized"][1].sum() > out["mask_original"][1].sum()  # a harmonized volume is segmented


def test_options_default_to_passing_the_reference_protocol_through():
    assert ConvertOptions().passthrough_protocol == REFERENCE_PROTOCOL == "M80"
    assert ConvertOptions(reference_passthrough=False).passthrough_protocol is None
    assert ConvertOptions(reference_protocol="M60").passthrough_protocol == "M60"


def test_the_cli_flag_turns_the_passthrough_off(convert_options_of):
    """``convert --harmonize-reference`` (and the job script, which runs the same command) reach the options."""
    assert convert_options_of().reference_passthrough is True
    assert convert_options_of("--harmonize-reference").reference_passthrough is False


@pytest.fixture(scope="module")
def working_harmonizer(tmp_path_factory) -> str:
    """A saved cpu-small harmonizer that changes every series (an untrained one is the identity: its tail is 0)."""
    from ctharmony.models import build
    from ctharmony.models.io import save_model

    torch.manual_seed(0)
    model = build("cpu-small")
    with torch.no_grad():
        torch.nn.init.normal_(model.net.tail.weight, std=0.02)
        model.net.tail.bias.fill_(0.05)  # about +20 HU over the model's window
    return str(save_model(model, tmp_path_factory.mktemp("working") / "harmonizer"))


@pytest.fixture(scope="module")
def threshold_segmenter(tmp_path_factory) -> str:
    """A TorchScript segmenter file with its sidecar (window -160..240 HU, threshold at 40 HU)."""
    path = tmp_path_factory.mktemp("threshold") / "threshold.pt"
    torch.jit.save(torch.jit.script(_Threshold(level=0.5)), path)
    sidecar = {"kind": "segmenter", "intensity": {"hu_min": -160, "hu_max": 240}, "output": "probability",
               "name": "threshold-segmenter", "version": "1"}
    Path(f"{path}.yaml").write_text(yaml.safe_dump(sidecar), encoding="utf-8")
    return str(path)


@pytest.mark.slow
def test_converted_reference_series_equal_their_source(subset_catalog, working_harmonizer, threshold_segmenter,
                                                       tmp_path):
    from ctharmony.archive import read_seg, read_series
    from ctharmony.evaluate.metrics import dice
    from ctharmony.infer.pipeline import convert_archive

    catalog = subset_catalog(tmp_path / "catalog.parquet", (REFERENCE_PROTOCOL, "M40"))
    results = convert_archive(catalog, working_harmonizer, threshold_segmenter, tmp_path / "out",
                              options=ConvertOptions(batch_slices=4, progress_interval_s=0))
    sources = pd.read_parquet(catalog).set_index("series_key")["files"]
    assert results["series_key"].tolist() == sources.index.tolist() and (results["status"] == "done").all()
    expected = np.where(results["protocol"] == REFERENCE_PROTOCOL, "passthrough", "harmonized")
    assert results["harmonizer_action"].tolist() == expected.tolist() and "passthrough" in expected

    for row in results.itertuples():
        source = read_series(list(sources[row.series_key]))
        written = sorted(Path(row.output_dir).glob("*.dcm"))
        derived = read_series([str(f) for f in written])
        masks = {name: np.load(getattr(row, f"mask_{name}_path"))["mask"] for name in ("original", "harmonized")}
        assert 0 < masks["original"].sum() < masks["original"].size  # the segmenter found something, not all
        if row.harmonizer_action == "harmonized":
            assert not np.array_equal(derived.hu, source.hu)  # the model changed this one
            continue
        assert derived.hu.tobytes() == source.hu.tobytes()  # through int16 and rescale: the same HU
        assert derived.positions.tolist() == source.positions.tolist()
        np.testing.assert_array_equal(masks["harmonized"], masks["original"])
        assert dice(masks["harmonized"], masks["original"]) == 1.0
        assert row.liver_volume_ml_harmonized == row.liver_volume_ml_original > 0
        assert row.reason == ""
        np.testing.assert_array_equal(read_seg(Path(row.seg_harmonized_path), derived), masks["original"])
        header = pydicom.dcmread(written[0], stop_before_pixels=True)
        assert "DERIVED" in header.ImageType and "unchanged" in header.DerivationDescription
        assert header.SeriesInstanceUID == row.output_series_uid != row.series_uid

    # the pass-through off: the same M80 series is harmonized, its output differs from its input
    only_m80 = subset_catalog(tmp_path / "m80.parquet", (REFERENCE_PROTOCOL,))
    again = convert_archive(only_m80, working_harmonizer, threshold_segmenter, tmp_path / "harmonized",
                            options=ConvertOptions(batch_slices=4, progress_interval_s=0, limit=1,
                                                   reference_passthrough=False))
    again = again[again["status"] == "done"]
    assert len(again) == 1 and again["harmonizer_action"].tolist() == ["harmonized"]
    passed = results.set_index("series_key")
    for row in again.itertuples():
        derived = read_series([str(f) for f in sorted(Path(row.output_dir).glob("*.dcm"))])
        assert not np.array_equal(derived.hu, read_series(list(sources[row.series_key])).hu)
        assert row.output_series_uid != passed.loc[row.series_key, "output_series_uid"]  # other pixels, other UIDs
        masks = [np.load(getattr(row, f"mask_{name}_path"))["mask"] for name in ("original", "harmonized")]
        assert dice(*masks) < 1.0  # what the pass-through avoids


def test_real_ct_passes_through_int16_and_rescale_with_its_hu_exact(real_data, tmp_path):
    """The real Siemens series (JPEG 2000, intercept -1024) written as a pass-through reads back voxel for voxel."""
    from ctharmony.archive import read_series, write_derived_series
    from ctharmony.infer.writer import rounding_note

    files = sorted(str(f) for f in (real_data / "siemens-abdomen-ct").iterdir())
    source = read_series(files)
    written = write_derived_series(source, tmp_path / "out", model_name="m", model_version="1", passthrough=True)
    assert read_series([str(f) for f in written]).hu.tobytes() == source.hu.tobytes()
    assert rounding_note(source.hu) == ""
    assert "largest change 0.25 HU" in rounding_note(source.hu + np.float32(0.25))  # what it would have to say
    harmonized = write_derived_series(source, tmp_path / "h", model_name="m", model_version="1")
    assert pydicom.dcmread(written[0]).SeriesInstanceUID != pydicom.dcmread(harmonized[0]).SeriesInstanceUID
