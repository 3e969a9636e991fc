"""Benchmark: catalog throughput (files/s) against a plain single-process header-only pydicom loop.

Both read the same files in the same run, interleaved, after one untimed pass of each (page cache
warm, Ray workers started: cluster start-up is excluded). Rates are best-of-N (the least disturbed
run, as other processes may share the machine); the median of the per-pair ratios is printed too.
The catalog figure is the whole ``build_catalog`` (listing, Ray Data header reads, grouping,
protocol rules, Parquet), the baseline only ``pydicom.dcmread(path, stop_before_pixels=True)`` per
file. The ratio is catalog files/s over
loop files/s (target >= 0.9 on one node), repeated for each CPU count given, to show how it scales
with the node's cores.

Priority: Ray starts its workers at nice 15 by default, so on a machine shared with other busy
processes they get a small share of the CPU while the baseline loop runs at nice 0. The benchmark
runs the workers at ``--worker-niceness`` (default 0, the loop's) so the comparison is like for
like; on a dedicated node the niceness makes no difference.

    .venv/bin/python bench/bench_catalog.py --files 6000 --cpus 1,2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # testkit: the synthetic test series


def make_archive(root: Path, files: int, slices_per_series: int = 100) -> list[str]:
    """Synthetic CT series (64 x 64 slices) until ``files`` files exist under ``root``."""
    from ctharmony.archive.scan import list_archive
    from testkit.synthetic_ct import write_ct_series

    series = -(-files // slices_per_series)
    for index in range(series):
        folder = root / f"site-{index % 3}" / f"series-{index:04d}"
        if not folder.is_dir() or len(list(folder.iterdir())) < slices_per_series:
            write_ct_series(folder, slices=slices_per_series, rows=64, columns=64, seed=index)
    return list_archive(root).files


def plain_loop(files: list[str]) -> float:
    import pydicom

    start = time.perf_counter()
    for path in files:
        pydicom.dcmread(path, stop_before_pixels=True)
    return time.perf_counter() - start


def header_loop(files: list[str]) -> float:
    """The catalog's own per-file reader (tags + pixel-data checks + pseudonym), in this process."""
    from ctharmony.archive.headers import read_header

    start = time.perf_counter()
    for path in files:
        read_header(path, salt="bench")
    return time.perf_counter() - start


def catalog_once(root: Path, out: Path, chunk_size: int | None) -> tuple[float, int]:
    from ctharmony.archive.catalog import build_catalog

    start = time.perf_counter()
    df = build_catalog(root, out, chunk_size=chunk_size, progress=False)
    return time.perf_counter() - start, len(df)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=6000)
    parser.add_argument("--cpus", default=",".join(str(c) for c in sorted({1, os.cpu_count() or 1})),
                        help="comma-separated CPU counts of the embedded Ray node to measure")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--chunk-size", type=int, default=None, help="files per task (default: automatic)")
    parser.add_argument("--worker-niceness", type=int, default=0, help="nice level of the Ray workers")
    parser.add_argument("--workdir", type=Path, default=None, help="default: $CTHARMONY_HOME/bench-catalog")
    args = parser.parse_args()

    import ray

    from ctharmony import cluster
    from ctharmony.config import data_home

    os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
    os.environ["RAY_worker_niceness"] = str(args.worker_niceness)  # read by the raylet at start
    workdir = args.workdir or data_home() / "bench-catalog"
    root = workdir / "archive"
    started = time.perf_counter()
    files = make_archive(root, args.files)
    print(f"archive: {len(files)} files under {root} (ready in {time.perf_counter() - started:.1f} s)")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; "
          f"Ray workers at nice {args.worker_niceness}, this loop at nice {os.nice(0)}")
    print(f"{'cpus':>4} {'loop files/s':>13} {'catalog files/s':>16} {'ratio':>6} {'median ratio':>13}"
          f"  (best of {args.repeats} interleaved runs each; median of the per-pair ratios)")
    plain_loop(files)
    pairs = [(plain_loop(files), header_loop(files)) for _ in range(args.repeats)]
    print(f"per-file reader, one process: read_header {len(files) / min(p[1] for p in pairs):.0f} files/s, "
          f"plain dcmread {len(files) / min(p[0] for p in pairs):.0f} files/s "
          f"(ratio {min(p[0] for p in pairs) / min(p[1] for p in pairs):.2f})")
    results = {}
    for cpus in [int(c) for c in args.cpus.split(",")]:
        cluster.connect(num_cpus=cpus, quiet=True)
        out = workdir / f"catalog-{cpus}.parquet"
        plain_loop(files)  # untimed: page cache warm for both
        catalog_once(root, out, args.chunk_size)  # untimed: Ray workers started, imports done
        loop_s, catalog_s = [], []
        for _ in range(args.repeats):
            loop_s.append(plain_loop(files))
            seconds, _rows = catalog_once(root, out, args.chunk_size)
            catalog_s.append(seconds)
        loop_rate = len(files) / min(loop_s)
        catalog_rate = len(files) / min(catalog_s)
        results[cpus] = catalog_rate / loop_rate
        paired = statistics.median(a / b for a, b in zip(loop_s, catalog_s, strict=True))
        print(f"{cpus:>4} {loop_rate:>13.0f} {catalog_rate:>16.0f} {results[cpus]:>6.2f} {paired:>13.2f}")
        ray.shutdown()
    if len(results) > 1:
        low, high = min(results), max(results)
        print(f"scaling: ratio {results[low]:.2f} at {low} CPU -> {results[high]:.2f} at {high} CPUs "
              f"(x{results[high] / results[low]:.2f} for x{high / low:g} cores)")
    print(f"load average {os.getloadavg()[0]:.1f} at end (the machine may be shared: compare ratios, not rates)")


if __name__ == "__main__":
    main()
