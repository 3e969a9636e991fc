"""``convert --no-original-mask``: the harmonized series' mask only (half the segmenter's work), written as such."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ctharmony.infer.pipeline import load_catalog_series, read_catalog_row
from ctharmony.infer.predictors import HarmonizerPredictor, SegmenterPredictor
from ctharmony.infer.resume import OutputLayout
from ctharmony.infer.writer import write_converted_series
from ctharmony.models import build


class _CountingSegmenter(SegmenterPredictor):
    """Records how many slices each call sends through the network."""

    def predict(self, volume, protocol=None, direction=None):
        self.slices_seen = getattr(self, "slices_seen", 0) + volume.shape[0]
        return super().predict(volume, protocol, direction)


@pytest.fixture(scope="module")
def harmonized_rows(phantom_catalog):
    """An M40 and an M80 (passed through) phantom series, read and harmonized as the pipeline does."""
    torch.manual_seed(0)
    harmonizer = build("cpu-small")
    with torch.no_grad():
        harmonizer.net.tail.weight.normal_(0.0, 0.01)  # changes HU, so the two masks can differ
    items = [i for i in load_catalog_series(phantom_catalog[0]) if i["protocol"] in ("M40", "M80")][:2]
    rows = [read_catalog_row(item) for item in items]
    harmonize = HarmonizerPredictor(harmonizer, device="cpu", passthrough_protocol="M80")
    return [{k: v[0] for k, v in harmonize({k: np.asarray([v]) for k, v in row.items()}).items()} for row in rows]


def test_the_segmenter_skips_only_the_harmonized_rows_originals(harmonized_rows):
    segmenter = build("liver-unet")
    for row in harmonized_rows:
        batch = {k: np.asarray([v]) for k, v in row.items()}
        both = _CountingSegmenter(segmenter, device="cpu")(batch)
        skipping = _CountingSegmenter(segmenter, device="cpu", segment_original=False)
        one = skipping(batch)
        slices = row["hu"].shape[0]
        np.testing.assert_array_equal(one["mask_harmonized"][0], both["mask_harmonized"][0])
        if row["harmonizer_action"] == "passthrough":  # segmented once either way, both masks kept
            assert skipping.slices_seen == slices
            np.testing.assert_array_equal(one["mask_original"][0], both["mask_original"][0])
        else:
            assert skipping.slices_seen == slices and one["mask_original"][0].size == 0


def test_the_writer_leaves_out_the_original_seg_and_mask(harmonized_rows, tmp_path):
    row = next(r for r in harmonized_rows if r["harmonizer_action"] == "harmonized")
    batch = {k: np.asarray([v]) for k, v in row.items()}
    segmented = SegmenterPredictor(build("liver-unet"), device="cpu", segment_original=False)(batch)
    OutputLayout(tmp_path / "out").prepare()
    record = write_converted_series({k: v[0] for k, v in segmented.items()}, out=str(tmp_path / "out"))
    assert record["status"] == "done", record["reason"]
    assert record["seg_original_path"] == record["mask_original_path"] == ""
    assert np.isnan(record["liver_volume_ml_original"]) and record["liver_volume_ml_harmonized"] >= 0
    assert Path(record["seg_harmonized_path"]).is_file() and Path(record["mask_harmonized_path"]).is_file()
    assert not list(Path(record["output_dir"]).parent.glob("*original*"))


def test_the_cli_flag_reaches_the_options(convert_options_of):
    assert convert_options_of().segment_original is True
    assert convert_options_of("--no-original-mask").segment_original is False
