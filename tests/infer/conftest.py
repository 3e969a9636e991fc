"""Shared by the conversion tests: a tiny phantom archive + its catalog, and fresh untrained models."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

TEST_RAY_CPUS = 4


def ensure_ray() -> None:
    """Join the shared embedded test cluster (as the ``ray_local`` fixture does), starting it if needed."""
    import ray

    from ctharmony import cluster

    if not ray.is_initialized():
        cluster.connect(num_cpus=TEST_RAY_CPUS, quiet=True)


@pytest.fixture(scope="session")
def phantom_catalog(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """A phantom archive (2 patients, 6 protocols, 8 slices of 64 x 64) and its catalog (real pieces)."""
    from ctharmony.archive import build_catalog
    from ctharmony.phantom import generate_archive

    root = tmp_path_factory.mktemp("phantom")
    generate_archive(root / "archive", patients=2, slices=8, size=64)
    ensure_ray()
    frame = build_catalog(root / "archive" / "dicom", root / "catalog.parquet", progress=False)
    return root / "catalog.parquet", frame


@pytest.fixture(scope="session")
def model_paths(tmp_path_factory) -> tuple[str, str]:
    """Freshly built (untrained) harmonizer (cpu-small) and segmenter (liver-unet), saved to folders."""
    import torch

    from ctharmony.models import build
    from ctharmony.models.io import save_model

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("models")
    return str(save_model(build("cpu-small"), root / "harmonizer")), str(save_model(build("liver-unet"), root / "seg"))


@pytest.fixture(scope="session")
def subset_catalog(phantom_catalog):
    """Make a copy of the catalog holding only the ok series of some protocols (smaller, faster tests)."""

    def make(out: Path, protocols: tuple[str, ...]) -> Path:
        frame = pd.read_parquet(phantom_catalog[0])
        frame[frame["protocol"].isin(protocols) & (frame["status"] == "ok")].to_parquet(out, index=False)
        return out

    return make


@pytest.fixture
def convert_options_of(monkeypatch, tmp_path):
    """``ctharmony convert`` with extra flags -> the ConvertOptions it would run (convert_archive stubbed)."""
    from typer.testing import CliRunner

    import ctharmony.infer.pipeline as pipeline
    from ctharmony.cli import app
    from ctharmony.infer.resume import OutputBusyError

    seen = []

    def fake_convert(catalog, harmonizer, segmenter, out, *, address=None, options=None):
        seen.append(options)
        raise OutputBusyError("stop here: the options are all this test needs")

    monkeypatch.setattr(pipeline, "convert_archive", fake_convert)
    monkeypatch.setattr("ctharmony.cli.convert.preflight", lambda check: ("h", "s"))

    def run(*flags: str):
        result = CliRunner().invoke(app, ["convert", "--catalog", "c", "--harmonizer", "h", "--segmenter", "s",
                                          "--out", str(tmp_path), *flags])
        assert result.exit_code == 2, result.output
        return seen[-1]

    return run
