"""Scanner simulation speed: per-slice cost of each stage at 256 x 256, and a demo-sized archive.

Run: ``.venv/bin/python bench/bench_simulate.py [--size 256] [--slices 4] [--patients 14 --archive-slices 24
--archive-size 96]``. Prints seconds per slice of projection (the three material maps, once per slice),
detection (both tubes: spectra, noise, beam-hardening correction), FBP (four kernels / tubes), the
iterative reconstruction (both strengths) and the dual-energy images, then the wall time of a
demo-sized archive (``make demo``'s 14 patients x 24 slices at 96 x 96, both packaged sites).
The svmbir system matrices are computed once per geometry (cached); the first run pays for that.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from ctharmony.scanmodel.anatomy import patient_grid, sample_patient
from ctharmony.scanmodel.sites import load_site
from ctharmony.simulate import simulate_archive
from ctharmony.simulate.maps import phantom_maps
from ctharmony.simulate.scanner import Scanner


def stages(size: int, slices: int, site_name: str) -> None:
    site = load_site(site_name)
    params = sample_patient(np.random.default_rng([0, 0]))
    grid = patient_grid(params, site, slices, size, 0.0)
    start = time.perf_counter()
    maps = phantom_maps(params, grid)
    anatomy_s = time.perf_counter() - start
    scanner = Scanner(site, size, fov_mm=size * grid.spacing[2])
    scanner.project(maps)  # warm-up: the system matrix is computed on first use
    scanner.timings.clear()
    lines = scanner.project(maps)
    start = time.perf_counter()
    scanner.reconstruct(lines, maps, np.random.default_rng(1))
    protocols_s = time.perf_counter() - start
    print(f"site {site_name}, {size}x{size}, {scanner.projector.geometry.views} views, {slices} slices")
    print(f"  anatomy (material maps)      {anatomy_s / slices:7.3f} s/slice")
    for stage, seconds in scanner.timings.items():
        print(f"  {stage:<28} {seconds / slices:7.3f} s/slice")
    print(f"  all protocols from cached projections: {protocols_s / slices:.3f} s/slice")


def archive(patients: int, slices: int, size: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        simulate_archive(Path(tmp) / "sim", patients=patients, slices=slices, size=size)
        seconds = time.perf_counter() - start
    print(f"archive: {patients} patients x {slices} slices at {size}x{size}, 2 sites: {seconds:.0f} s "
          f"({seconds / (patients * slices):.3f} s/slice)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--slices", type=int, default=4)
    parser.add_argument("--site", default="siemens-force")
    parser.add_argument("--patients", type=int, default=14)
    parser.add_argument("--archive-slices", type=int, default=24)
    parser.add_argument("--archive-size", type=int, default=96)
    args = parser.parse_args()
    stages(args.size, args.slices, args.site)
    archive(args.patients, args.archive_slices, args.archive_size)


if __name__ == "__main__":
    main()
