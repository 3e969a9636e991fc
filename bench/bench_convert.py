"""Benchmark the archive conversion at the clinical matrix: end-to-end against the bare forward, per stage.

For each archive — phantom 512 x 512 series, uncompressed and the same re-encoded as JPEG 2000 (lossless),
a longer uncompressed phantom archive (``--long-patients``, where start-up is amortised as over a real
archive), and the real Siemens series (JPEG 2000, ``data/real/siemens-abdomen-ct``) — one run prints:

- end-to-end slices/s of ``convert_archive`` with the options ``ctharmony convert`` uses by default (read
  DICOM -> harmonize -> segment original + harmonized -> write series, 2 SEGs, masks), Ray's start-up
  excluded, actor start-up (model loading) included;
- the bare forward of the same models in this process on all cores, same precision and layout (the
  predictors on preloaded volumes: harmonizer pass, then segmenter pass over original + harmonized; the
  mean of a pass before and one after the conversion), and the ratio end-to-end / bare (target >= 0.85);
- seconds per slice of each stage (``results.parquet``'s seconds_*: work per stage, stages overlap),
  peak memory (PSS of this process and the Ray processes it started), and each network's GFLOP per
  slice and GFLOP/s in the bare forward;
- agreement of the run's precision with fp32 on the first ``--agree-slices`` slices of each series:
  mean and p99 |dHU| of the harmonized images, Dice of the liver masks (original and harmonized);
- the machine: CPU, cores, native bf16, fp32 and bf16 matmul peaks (GFLOP/s) for context.

    .venv/bin/python bench/bench_convert.py                          # defaults (precision auto)
    .venv/bin/python bench/bench_convert.py --baseline    # and the previous defaults (fp32, NCHW, 2 pools)
    .venv/bin/python bench/bench_convert.py --predictors-only    # forward per precision and layout, no Ray

The models have the shipped specs' shapes (``--spec`` harmonizer, liver-unet): a fresh harmonizer that changes
HU by tens, a segmenter fitted for ``--fit-epochs`` on a separate training phantom (other patients, never the
measured series: :func:`build_models`); ``--harmonizer`` and
``--segmenter`` take saved (trained) models instead. Speed does not depend on the weights; agreement does.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gpu import forward_flops, make_archives  # noqa: E402 - the phantom archives, FLOP counting

REPO = Path(__file__).resolve().parents[1]
REAL_SERIES = REPO / "data" / "real" / "siemens-abdomen-ct"
STAGES = ("read", "harmonize", "segment", "write")
TRAIN_SEED, TRAIN_PATIENTS = 1, 2  # the segmenter's training phantom (the measured ones: seeds 0 and 2)
LONG_SEED = 2


def tree_pss_mb(root_pid: int) -> float:
    """Proportional set size (MB) of ``root_pid`` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    total_kb, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                total_kb += next((int(line.split()[1]) for line in f if line.startswith("Pss:")), 0)
        except OSError:
            continue
    return total_kb / 1024.0


class PeakMemory:
    """Samples :func:`tree_pss_mb` of this process tree in a thread; ``peak_mb`` after the ``with`` block.

    A sample reads every process's ``smaps_rollup`` (0.1-0.2 s of CPU with a Ray cluster's processes), so
    it samples every 2 s, and the bench samples the bare forward too: both timings carry the same cost.
    """

    def __init__(self, interval_s: float = 2.0) -> None:
        self.interval_s, self.peak_mb = interval_s, 0.0
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, tree_pss_mb(os.getpid()))
            self._stop.wait(self.interval_s)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def matmul_peaks(size: int = 2048, repeats: int = 5) -> dict[str, float]:
    """Best GFLOP/s of a ``size``-square matmul in fp32 and bf16 on this process's threads."""
    import torch

    peaks = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
        a @ b  # warm-up
        best = min(_timed(lambda a=a, b=b: a @ b) for _ in range(repeats))
        peaks[name] = 2 * size**3 / best / 1e9
    return peaks


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def build_models(tmp: Path, args) -> tuple[str, str]:
    """Saved harmonizer and segmenter folders: the given ones, or models of the shipped specs.

    The harmonizer's zero-initialised output conv (the identity) is set so it changes HU by tens, as a
    trained one does; the segmenter is fitted for ``--fit-epochs`` on the M80 series and true masks of a
    *training* phantom (other patients, generator seed ``TRAIN_SEED``), never on the series measured, so
    that its masks are of the liver (an untrained one marks everything) and their Dice means something.
    """
    import torch

    from ctharmony.archive import read_catalog
    from ctharmony.models import build
    from ctharmony.models.io import save_model
    from ctharmony.models.registry import load_spec
    from ctharmony.phantom import generate_archive
    from ctharmony.train.segmenter import fit_segmenter, m80_records, read_mask_on_grid

    torch.manual_seed(0)
    harmonizer, segmenter = args.harmonizer, args.segmenter
    if not harmonizer:
        model = build(args.spec)
        with torch.no_grad():
            model.net.tail.weight.normal_(0.0, 0.01)
        harmonizer = str(save_model(model, tmp / "harmonizer"))
    if not segmenter:
        train = tmp / "train-phantom"
        generate_archive(train, patients=TRAIN_PATIENTS, slices=args.slices, size=args.size, sites=1,
                         seed=TRAIN_SEED, workers=min(2, os.cpu_count() or 1))  # fmt: skip
        catalog = catalog_of(train / "dicom", tmp / "catalog-train.parquet")
        spec = load_spec("liver-unet", [f"train.epochs_stage1={args.fit_epochs}"])
        records = m80_records(read_catalog(catalog).series(), train / "masks")
        pairs = [read_mask_on_grid(r["mask"], r["files"]) for r in records]
        segmenter = str(save_model(fit_segmenter(spec, pairs, []), tmp / "segmenter"))
    return harmonizer, segmenter


def catalog_of(folder: Path, out: Path) -> Path:
    from ctharmony.archive import build_catalog

    build_catalog(folder, out, progress=False)
    return out


def load_batches(catalog: Path) -> list[dict[str, np.ndarray]]:
    """One predictor batch per ok series of ``catalog``, volumes preloaded (what the actors receive)."""
    from ctharmony.infer.pipeline import load_catalog_series, read_catalog_row

    batches = []
    for item in load_catalog_series(catalog):
        row = read_catalog_row(item)
        batches.append({"hu": row["hu"][None], "protocol": np.array([row["protocol"]]),
                        "direction": row["direction"][None], "status": np.array([row["status"]])})
    return batches


def predictors(harmonizer: str, segmenter: str, options) -> tuple:
    """A harmonizer and a segmenter predictor as the pipeline's actors build them, on this process's threads."""
    from ctharmony.infer.predictors import HarmonizerPredictor, SegmenterPredictor

    common = {"device": "cpu", "amp": options.precision, "channels_last": options.channels_last,
              "batch_slices": options.batch_slices or 8}
    return (HarmonizerPredictor(harmonizer, passthrough_protocol=options.passthrough_protocol, **common),
            SegmenterPredictor(segmenter, threshold=options.threshold, **common))


def bare_forward(batches, harmonize, segment) -> dict[str, float]:
    """Seconds of the harmonizer and segmenter passes over preloaded ``batches`` (after a warm-up)."""
    first = batches[0]["hu"][0][:2]
    harmonize.predict(first)
    segment.predict(first)
    seconds = {"harmonize": 0.0, "segment": 0.0}
    for batch in batches:
        start = time.perf_counter()
        out = harmonize(batch)
        seconds["harmonize"] += time.perf_counter() - start
        start = time.perf_counter()
        segment(out)
        seconds["segment"] += time.perf_counter() - start
    return seconds


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def agreement(batches, run: tuple, fp32: tuple, slices: int) -> dict[str, float]:
    """The run's precision against fp32 on the first ``slices`` slices of each series."""
    diffs, masks = [], {"original": ([], []), "harmonized": ([], [])}
    for batch in batches:
        part = {**batch, "hu": batch["hu"][:, :slices]}
        outs = [segment(harmonize(part)) for harmonize, segment in (run, fp32)]
        if outs[0]["harmonizer_action"][0] == "harmonized":
            diffs.append(np.abs(outs[0]["hu_harmonized"][0] - outs[1]["hu_harmonized"][0]).ravel())
        for name, (mine, ref) in masks.items():
            mine.append(outs[0][f"mask_{name}"][0].ravel())
            ref.append(outs[1][f"mask_{name}"][0].ravel())
    diff = np.concatenate(diffs) if diffs else np.zeros(1)
    result = {"mean_abs_hu": float(diff.mean()), "p99_abs_hu": float(np.percentile(diff, 99))}
    for name, (mine, ref) in masks.items():
        result[f"dice_{name}"] = dice(np.concatenate(mine), np.concatenate(ref))
        result[f"liver_fraction_{name}"] = float(np.concatenate(ref).mean())
    return result


def network_rates(batches, run: tuple, bare: dict[str, float]) -> str:
    """Each network's GFLOP per slice and GFLOP/s in the bare forward (passes as the predictors run them)."""
    import torch

    harmonized = sum(b["hu"].shape[1] for b in batches if b["protocol"][0] != run[0].passthrough_protocol)
    total = sum(b["hu"].shape[1] for b in batches)
    shape = batches[0]["hu"].shape[2:]
    parts = []
    for name, stage, predictor, passes in (("harmonizer", "harmonize", run[0], harmonized),
                                           ("segmenter", "segment", run[1], total + harmonized)):
        flops = forward_flops(predictor.model, shape[0], torch.device("cpu")) if shape[0] == shape[1] else 0
        rate = flops * passes / max(bare[stage], 1e-9) / 1e9
        parts.append(f"{name} {flops / 1e9:.1f} GFLOP/slice x {passes} passes, {rate:.0f} GFLOP/s")
    return "; ".join(parts)


def bench_archive(label: str, catalog: Path, out: Path, models: tuple[str, str], options, args,
                  seen: set) -> None:
    """Convert ``catalog`` end to end and print its figures against the bare forward of its pixels, timed
    before and after the conversion (their mean: a shared machine's speed drifts). Network rates and
    agreement once per pixels in ``seen``.
    """
    import torch

    from ctharmony.infer.pipeline import ConvertOptions, convert_archive

    batches = load_batches(catalog)
    slices = sum(b["hu"].shape[1] for b in batches)
    shape = "x".join(str(n) for n in batches[0]["hu"].shape[2:])
    run = predictors(*models, options)
    layout = run[0].model.net.head.weight.is_contiguous(memory_format=torch.channels_last)
    print(f"\n## {label}: {len(batches)} series, {slices} slices of {shape}; precision {run[0].amp}, "
          f"channels-last {layout}")
    source = (label.split(",")[0], run[0].amp, layout)  # the JPEG 2000 copy has the uncompressed pixels
    fresh = source not in seen
    seen.add(source)
    with PeakMemory():  # the same sampling cost as the end-to-end run
        before = bare_forward(batches, *run)
    with PeakMemory() as peak:
        start, wall_start = time.perf_counter(), time.time()
        results = convert_archive(catalog, *models, out, options=options)
        e2e_s = time.perf_counter() - start
    with PeakMemory():
        after = bare_forward(batches, *run)
    bare = {k: (before[k] + after[k]) / 2 for k in before}  # a shared machine's speed drifts: both sides
    bare_s = sum(bare.values())
    assert (results["status"] == "done").all(), results["reason"].tolist()
    e2e_rate, bare_rate = slices / e2e_s, slices / bare_s
    print(f"end-to-end conversion:          {e2e_rate:6.2f} slices/s ({e2e_s:.1f} s)")
    print(f"bare forward, same models:      {bare_rate:6.2f} slices/s ({bare_s:.1f} s: harmonize "
          f"{bare['harmonize']:.1f} s, segment {bare['segment']:.1f} s; mean of {sum(before.values()):.1f} s "
          f"before and {sum(after.values()):.1f} s after the conversion)")
    print(f"ratio end-to-end / bare:        {e2e_rate / bare_rate:6.3f}  (target >= 0.85)")
    if len(results) > 2:  # from the first series written to the last: start-up and pipeline fill left out
        written = sorted((Path(r.output_dir).parent / "result.json").stat().st_mtime for r in results.itertuples())
        steady = slices * (len(results) - 1) / len(results) / max(written[-1] - written[0], 1e-9)
        print(f"steady state (first to last series written): {steady:.2f} slices/s, ratio {steady / bare_rate:.3f};"
              f" start-up and fill until the first: {written[0] - wall_start:.1f} s")
    stage = {s: results[f"seconds_{s}"].sum() / slices for s in STAGES}
    print("pipeline seconds per slice:     " + ", ".join(f"{s} {v:.3f}" for s, v in stage.items()))
    print(f"bare seconds per slice:         harmonize {bare['harmonize'] / slices:.3f}, "
          f"segment {bare['segment'] / slices:.3f}")
    print(f"peak memory (PSS, all processes): {peak.peak_mb:.0f} MB")
    if fresh:
        print(f"networks: {network_rates(batches, run, bare)}")
    if fresh and args.agree_slices and run[0].amp != "fp32":
        fp32 = predictors(*models, ConvertOptions(precision="fp32", channels_last=False))
        agree = agreement(batches, run, fp32, args.agree_slices)
        print(f"{run[0].amp} vs fp32 ({args.agree_slices} slices a series): harmonized |dHU| mean "
              f"{agree['mean_abs_hu']:.3f}, p99 {agree['p99_abs_hu']:.3f}; masks Dice original "
              f"{agree['dice_original']:.5f}, harmonized {agree['dice_harmonized']:.5f} (liver fraction "
              f"{agree['liver_fraction_original']:.3f} / {agree['liver_fraction_harmonized']:.3f})")


def predictors_on_device(size: int = 512) -> None:
    """Each shipped network's forward on this machine's device, per precision and layout: slices/s, GFLOP/s."""
    import torch

    from ctharmony.infer.predictors import HarmonizerPredictor, SegmenterPredictor
    from ctharmony.models import build

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    slices = 64 if cuda else 8
    volume = np.random.default_rng(0).normal(60, 80, (slices, size, size)).astype(np.float32)
    print(f"# {time.strftime('%Y-%m-%d')}; device: {torch.cuda.get_device_name() if cuda else cpu_name()}, "
          f"{torch.get_num_threads()} threads; {slices} slices of {size}x{size}, batches of 8")
    specs = (("paper", HarmonizerPredictor),) if cuda else ()  # paper: minutes a variant on a small CPU
    for spec, cls in (*specs, ("cpu-small", HarmonizerPredictor), ("liver-unet", SegmenterPredictor)):
        model = build(spec)
        flops = forward_flops(model.to(device).eval(), size, device)
        outputs = {}
        for precision, layout in (("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True)):
            predictor = cls(model, device=str(device), amp=precision, channels_last=layout, batch_slices=8)
            predictor.predict(volume[:8])  # warm-up
            start = time.perf_counter()
            outputs[precision, layout] = predictor.predict(volume)
            if cuda:
                torch.cuda.synchronize()
            rate = slices / (time.perf_counter() - start)
            name = f"{precision} {'channels-last' if layout else 'NCHW'}"
            print(f"{spec:>10} {name:<18} {rate:7.2f} slices/s {rate * flops / 1e9:7.0f} GFLOP/s "
                  f"({flops / 1e9:.1f} GFLOP/slice)")
        diff = np.abs(outputs["bf16", True] - outputs["fp32", False])
        print(f"{spec:>10} bf16 channels-last vs fp32 NCHW: max |diff| {diff.max():.3g}, mean {diff.mean():.3g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--predictors-only", action="store_true",
                        help="only the networks' forward per precision and layout on this device, no Ray")
    parser.add_argument("--spec", default="cpu-small", help="harmonizer spec (fresh weights)")
    parser.add_argument("--harmonizer", help="a saved harmonizer instead of a fresh --spec one")
    parser.add_argument("--segmenter", help="a saved segmenter instead of a fresh liver-unet")
    parser.add_argument("--patients", type=int, default=1, help="phantom patients (6 series each)")
    parser.add_argument("--slices", type=int, default=8, help="slices per phantom series")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--real", default=str(REAL_SERIES), help="a real series folder ('' to skip)")
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    parser.add_argument("--channels-last", default="auto", choices=("auto", "on", "off"))
    parser.add_argument("--threads", type=int, help="torch threads per actor (default: convert's)")
    parser.add_argument("--baseline", action="store_true",
                        help="also convert the uncompressed phantom as before this change (fp32, NCHW, "
                             "a pool per network, 1 thread per actor), in this run")
    parser.add_argument("--long-patients", type=int, default=8,
                        help="also convert an uncompressed phantom of this many patients with the defaults, "
                             "where start-up is amortised as over a real archive (0: skip)")
    parser.add_argument("--fit-epochs", type=int, default=6,
                        help="epochs fitting the fresh segmenter (on a separate training phantom)")
    parser.add_argument("--agree-slices", type=int, default=4, help="slices a series for the fp32 check (0: skip)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    if args.predictors_only:
        predictors_on_device()
        return

    import torch

    from ctharmony import cluster
    from ctharmony.infer.cpu_precision import native_bf16
    from ctharmony.infer.pipeline import ConvertOptions
    from ctharmony.phantom import generate_archive

    tmp = Path(tempfile.mkdtemp(prefix="bench-convert-"))
    os.environ.setdefault("CTHARMONY_HOME", str(tmp / "home"))
    layout = {"auto": None, "on": True, "off": False}[args.channels_last]
    options = ConvertOptions(precision=args.precision, channels_last=layout, threads=args.threads,
                             progress_interval_s=60)
    info = cluster.connect(quiet=True)  # excluded from the timings
    peaks = matmul_peaks()
    print(f"# {time.strftime('%Y-%m-%d')}; {cpu_name()}, {os.cpu_count()} cores, native bf16 {native_bf16()}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads in this process; {info.describe()}")
    print(f"# load average (1, 5, 15 min): {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"# matmul peak 2048^2: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s")
    print(f"# models: harmonizer {args.harmonizer or args.spec}, segmenter {args.segmenter or 'liver-unet'}; "
          f"convert options: precision {args.precision}, channels-last {args.channels_last}, "
          f"threads {args.threads or 'default'}")
    phantom = make_archives(tmp / "phantom", args.patients, args.slices, args.size)
    catalog = catalog_of(phantom["uncompressed"], tmp / "catalog-0.parquet")
    harmonizer, segmenter = build_models(tmp, args)
    archives = [(f"phantom {args.size}x{args.size}, {name}", folder, options) for name, folder in phantom.items()]
    if args.long_patients:  # start-up amortised as over a real archive; no agreement (same kind of pixels)
        long = tmp / "long-phantom"
        generate_archive(long, patients=args.long_patients, slices=args.slices, size=args.size, sites=1,
                         seed=LONG_SEED, workers=min(2, os.cpu_count() or 1))  # fmt: skip
        archives.append((f"phantom {args.size}x{args.size}, uncompressed, {args.long_patients} patients "
                         "(a longer archive)", long / "dicom", options))
    if args.baseline:
        before = ConvertOptions(precision="fp32", channels_last=False, threads=1, stages_in_one_actor=False,
                                progress_interval_s=60)
        archives.insert(1, (archives[0][0] + ", pre-bf16 defaults", archives[0][1], before))
    if args.real:
        archives.append((f"real {Path(args.real).name}, JPEG 2000", Path(args.real), options))
    seen: set = set()
    for i, (label, folder, chosen) in enumerate(archives):
        catalog = catalog_of(folder, tmp / f"catalog-{i}.parquet") if i else catalog
        bench_archive(label, catalog, tmp / f"out-{i}", (harmonizer, segmenter), chosen, args, seen)
    print(f"\n# load average (1, 5, 15 min) at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
