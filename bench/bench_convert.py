"""Benchmark the archive conversion: end-to-end throughput against the bare harmonizer, and streaming memory.

1. Throughput (target >= 0.85 on CPU): slices/s of ``convert_archive`` (read DICOM -> harmonize ->
   segment original + harmonized -> write DICOM series + 2 SEGs + masks) over a phantom archive,
   divided by slices/s of the bare harmonizer forward pass over the same slices preloaded in memory,
   with the same torch threads per model (``--threads``), measured in this one run. Ray's start-up is
   excluded; actor start-up (model loading) is included.
2. Memory (target <= 1.2): peak PSS of this process and every process it started (the embedded Ray
   cluster: GCS, raylet, workers, object store pages) while converting an archive ``--scale`` times
   larger, divided by the same peak for the base archive. The peak above the idle cluster is printed too.

    .venv/bin/python bench/bench_convert.py                # paper-scale harmonizer, 1 thread per model
    .venv/bin/python bench/bench_convert.py --spec cpu-small
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd


def tree_pss_mb(root_pid: int, top: list | None = None) -> tuple[float, int]:
    """Proportional set size (MB) of ``root_pid`` and all its descendants (Linux /proc), and their count.

    ``top``, when given, is filled with ``(MB, process name)`` of each process, largest first.
    """
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    total_kb, stack, count = 0, [root_pid], 0
    while stack:
        pid = stack.pop()
        count += 1
        stack.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        kb = int(line.split()[1])
                        total_kb += kb
                        break
            if top is not None:
                with open(f"/proc/{pid}/cmdline") as f:
                    name = f.read().replace("\0", " ")
                top.append((kb / 1024.0, _short_name(name)))
        except OSError:
            continue
    if top is not None:
        top.sort(reverse=True)
    return total_kb / 1024.0, count


def _short_name(cmdline: str) -> str:
    if cmdline.startswith("ray::"):
        return cmdline.split(" ")[0][:60]
    return " ".join(Path(part).name for part in cmdline.split()[:2])[:60]


class PeakMemory:
    """Samples :func:`tree_pss_mb` in a thread; ``peak_mb`` after the ``with`` block."""

    def __init__(self, interval_s: float = 0.25) -> None:
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self.processes = 0  # processes in the tree when the peak was seen
        self.top: list = []  # (MB, name) of the largest processes at the peak
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        top: list = []
        mb, count = tree_pss_mb(os.getpid(), top)
        if mb > self.peak_mb:
            self.peak_mb, self.processes, self.top = mb, count, top[:5]

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval_s)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def make_archive(root: Path, patients: int, slices: int, size: int) -> tuple[Path, pd.DataFrame]:
    from ctharmony.archive import build_catalog
    from ctharmony.phantom import generate_archive

    generate_archive(root / "archive", patients=patients, slices=slices, size=size, workers=2)
    frame = build_catalog(root / "archive" / "dicom", root / "catalog.parquet", progress=False)
    return root / "catalog.parquet", frame[frame["status"] == "ok"]


def predictors_on_device(size: int = 512, slices: int = 64) -> None:
    """Predictor figures on the device present (GPU when there is one): slices/s fp32 vs mixed precision."""
    import numpy as np
    import torch

    from ctharmony.infer.predictors import HarmonizerPredictor, SegmenterPredictor
    from ctharmony.models import build

    volume = np.random.default_rng(0).normal(60, 80, (slices, size, size)).astype(np.float32)
    print(f"# device: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'}")
    for spec, cls in (("paper", HarmonizerPredictor), ("cpu-small", HarmonizerPredictor),
                      ("liver-unet", SegmenterPredictor)):
        model = build(spec)
        outputs = {}
        for amp in (False, True):
            predictor = cls(model, amp=amp, batch_slices=16)
            predictor.predict(volume[:16])  # warm-up
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            start = time.perf_counter()
            outputs[amp] = predictor.predict(volume)
            rate = slices / (time.perf_counter() - start)
            print(f"{spec:>10} {size}x{size} amp={str(amp):<5} {rate:8.1f} slices/s")
        diff = np.abs(outputs[True] - outputs[False])
        print(f"{spec:>10} mixed precision vs fp32: max |diff| {diff.max():.3g}, mean {diff.mean():.3g}")
        tiled = cls(model, batch_slices=16, tile=size // 2 + 64, overlap=32).predict(volume[:16])
        print(f"{spec:>10} tiled ({size // 2 + 64} px, overlap 32) vs whole: max |diff| "
              f"{np.abs(tiled - outputs[True][:16]).max():.3g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--predictors-only", action="store_true",
                        help="only time the predictors on this machine's device (GPU check), no Ray")
    parser.add_argument("--spec", default="paper", help="harmonizer spec for the throughput figure")
    parser.add_argument("--memory-spec", default="cpu-small", help="harmonizer spec for the memory figure")
    parser.add_argument("--patients", type=int, default=2)
    parser.add_argument("--slices", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--memory-size", type=int, default=128)
    parser.add_argument("--scale", type=int, default=4, help="the larger archive has this many times the patients")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per model (bare and actors)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("ctharmony.infer").setLevel(logging.INFO)  # progress lines and the stage summary
    if args.predictors_only:
        predictors_on_device()
        return

    import torch

    from ctharmony import cluster
    from ctharmony.archive import read_series
    from ctharmony.infer.pipeline import ConvertOptions, convert_archive
    from ctharmony.infer.predictors import HarmonizerPredictor
    from ctharmony.models import build
    from ctharmony.models.io import save_model

    tmp = Path(tempfile.mkdtemp(prefix="bench-convert-"))
    os.environ.setdefault("CTHARMONY_HOME", str(tmp / "home"))
    torch.manual_seed(0)
    harmonizer = str(save_model(build(args.spec), tmp / "harmonizer"))
    small_harmonizer = str(save_model(build(args.memory_spec), tmp / "harmonizer-small"))
    segmenter = str(save_model(build("liver-unet"), tmp / "segmenter"))
    info = cluster.connect(quiet=True)  # excluded from the timings
    print(f"# {info.describe()}; torch threads per model: {args.threads}; cpu count {os.cpu_count()}")
    options = ConvertOptions(threads=args.threads, harmonizer_actors=(1, 1), segmenter_actors=(1, 1),
                             batch_slices=8, progress_interval_s=30)

    # 1. throughput
    catalog, ok = make_archive(tmp / "base", args.patients, args.slices, args.size)
    volumes = [read_series(list(files)).hu for files in ok["files"]]
    slices = sum(v.shape[0] for v in volumes)
    torch.set_num_threads(args.threads)
    bare = HarmonizerPredictor(harmonizer, threads=args.threads, batch_slices=8, device="cpu")
    bare.predict(volumes[0][:1])  # warm-up
    start = time.perf_counter()
    for volume in volumes:
        bare.predict(volume)
    bare_rate = slices / (time.perf_counter() - start)
    start, wall_start = time.perf_counter(), time.time()
    results = convert_archive(catalog, harmonizer, segmenter, tmp / "out-throughput", options=options)
    e2e_rate = slices / (time.perf_counter() - start)
    start = wall_start
    assert (results["status"] == "done").all(), results["reason"].tolist()
    print(f"harmonizer {args.spec}: {len(ok)} series, {slices} slices of {args.size}x{args.size}")
    print(f"bare harmonizer forward (preloaded): {bare_rate:.2f} slices/s")
    print(f"end-to-end conversion:               {e2e_rate:.2f} slices/s")
    print(f"throughput ratio end-to-end / bare:  {e2e_rate / bare_rate:.3f}  (target >= 0.85)")
    commits = sorted((Path(r.output_dir).parent / "result.json").stat().st_mtime for r in results.itertuples())
    steady = (slices - slices / len(results)) / max(commits[-1] - commits[0], 1e-9)
    print(f"steady state (first to last series written, start-up excluded): {steady:.2f} slices/s, "
          f"ratio {steady / bare_rate:.3f}; start-up until the first series was written: "
          f"{commits[0] - start:.1f} s")

    # 2. memory: base archive vs one `scale` times larger, same pipeline
    peaks = {}
    idle, idle_processes = tree_pss_mb(os.getpid())
    for name, patients in (("base", args.patients), (f"{args.scale}x", args.patients * args.scale)):
        catalog, ok = make_archive(tmp / f"mem-{name}", patients, args.slices, args.memory_size)
        with PeakMemory() as peak:
            results = convert_archive(catalog, small_harmonizer, segmenter, tmp / f"out-{name}", options=options)
        assert (results["status"] == "done").all(), results["reason"].tolist()
        peaks[name] = peak.peak_mb
        print(f"memory {name}: {len(ok)} series of {args.slices}x{args.memory_size}x{args.memory_size}, "
              f"peak PSS {peak.peak_mb:.0f} MB in {peak.processes} processes "
              f"(idle cluster before: {idle:.0f} MB in {idle_processes})")
        print("  largest at the peak: " + ", ".join(f"{name} {mb:.0f} MB" for mb, name in peak.top))
    big = f"{args.scale}x"
    print(f"peak memory ratio {big} / base:          {peaks[big] / peaks['base']:.3f}  (target <= 1.2)")
    print(f"peak above idle ratio {big} / base:      {(peaks[big] - idle) / max(peaks['base'] - idle, 1e-9):.3f}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
