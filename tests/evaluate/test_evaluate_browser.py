"""The HTML report of the simulated cohort (conftest's ``evaluation``) as headless Chromium shows it."""

from __future__ import annotations

import struct

import numpy as np

from ctharmony.evaluate.report import paper_tables
from testkit.browser import inspect_page, screenshot


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_every_table_and_figure_of_the_report_is_shown(evaluation, tmp_path):
    page = inspect_page(evaluation.files.html)
    assert page["title"] == "ctharmony cohort evaluation"
    tables = paper_tables(evaluation.cohort)
    assert [t["caption"] for t in page["tables"]] == [t.title for t in tables]
    assert any("Radiomics reproducibility" in t.title for t in tables)
    for shown, table in zip(page["tables"], tables, strict=True):
        assert shown["rows"] == len(table.rows) + 1, table.title  # header + body
        assert min(shown["size"]) > 0, table.title
    assert page["pageWidth"] <= 1280  # no table pushes the page sideways
    figures = {path.stem: _png_size(path.read_bytes()) for path in evaluation.files.plots}
    assert len(page["images"]) == len(figures) and "radiomics_ccc" in figures
    for image in page["images"]:  # decoded by the browser at the size of the PNG written beside the report
        assert image["complete"] and image["width"] > 0 and min(image["shown"]) > 0, image["alt"]
    assert sorted((i["width"], i["height"]) for i in page["images"]) == sorted(figures.values())
    from PIL import Image

    shot = np.asarray(Image.open(screenshot(evaluation.files.html, tmp_path / "shot.png", 800, 600)).convert("L"))
    assert shot.shape == (600, 800) and shot.std() > 10  # text and tables, not a blank page
