"""Benchmark the phantom generator: 10 patients x 6 protocols x 32 slices at 256 x 256 (target < 60 s
on 2 cores) and at 512 x 512; prints wall seconds, CPU seconds (load-independent: wall time on an idle
machine is about CPU / workers), files per second and the ratio to the target.

Run: .venv/bin/python bench/bench_phantom.py [--patients 10] [--slices 32] [--workers 2] [--sizes 256 512]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from ctharmony.phantom import generate_archive

TARGET_S = 60.0


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the worker processes)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=10)
    parser.add_argument("--slices", type=int, default=32)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    args = parser.parse_args()
    print(f"phantom benchmark: {args.patients} patients x 6 protocols x {args.slices} slices, "
          f"workers={args.workers}, cpus={os.cpu_count()}, load={os.getloadavg()[0]:.1f}")
    for size in args.sizes:
        out = Path(tempfile.mkdtemp(prefix=f"bench-phantom-{size}-"))
        try:
            start, cpu_start = time.perf_counter(), _cpu_seconds()
            generate_archive(out, patients=args.patients, slices=args.slices, size=size, sites=3, seed=0,
                             workers=args.workers)
            seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
            files = sum(1 for _ in (out / "dicom").rglob("*.dcm"))
            mb = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6
        finally:
            shutil.rmtree(out, ignore_errors=True)
        print(f"  {size}x{size}: {seconds:6.1f} s wall  {cpu:6.1f} s CPU (all processes)  {files} files  "
              f"{mb:7.1f} MB  {files / seconds:6.1f} files/s  wall / target {seconds / TARGET_S:.2f}")


if __name__ == "__main__":
    main()
