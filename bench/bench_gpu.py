"""GPU benchmark: generator forward, end-to-end conversion, decode, DDP training, peak memory -> JSON.

    .venv/bin/python bench/bench_gpu.py                  # CUDA when present (about 3-5 min), else --device cpu
    .venv/bin/python bench/bench_gpu.py --device cpu     # tiny CPU mode (forward only): checks the script
    .venv/bin/python bench/bench_gpu.py --out bench-gpu.json --sections forward,e2e,decode,ddp

Figures, all measured in this run:
- ``forward``: generator slices/s and TFLOP/s at ``--size`` (512) for fp32 and bf16, eager and compiled
  (FLOPs counted by ``torch.utils.flop_counter`` on one forward pass);
- ``e2e``: ``convert_archive`` slices/s on an uncompressed phantom archive and on the same archive
  re-encoded as JPEG 2000 (lossless), each divided by the bare forward's slices/s at the pipeline's
  precision (Ray start-up excluded, actor start-up included);
- ``decode``: JPEG 2000 slices/s decoded on CPU (pydicom + OpenJPEG), and on GPU when nvImageCodec is
  installed (else reported unavailable);
- ``ddp``: stage-1 training samples/s on 1 GPU and on all GPUs (torch DDP over NCCL);
- ``peak_gpu_memory_gib``: the largest allocation seen by any section of this process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))

import torch  # noqa: E402

from ctharmony.models import build  # noqa: E402

SECTIONS = ("forward", "e2e", "decode", "ddp")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_flops(model: torch.nn.Module, size: int, device: torch.device) -> int:
    """FLOPs of one forward pass over one ``size`` x ``size`` slice."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(torch.zeros(1, 1, size, size, device=device))
    return int(counter.get_total_flops())


def bench_forward(spec: str, size: int, batch: int, repeats: int, device: torch.device,
                  compile_too: bool = True) -> dict:
    """slices/s and TFLOP/s of the generator for each precision, eager (and compiled with ``compile_too``)."""
    from ctharmony.infer.tiling import _autocast, prepare_model

    torch.manual_seed(0)
    flops = forward_flops(build(spec).to(device).eval(), size, device)
    x = torch.randn(batch, 1, size, size, device=device) * 300.0
    rows = []
    for compiled in (False, True) if compile_too else (False,):
        model = prepare_model(build(spec), device, channels_last=device.type == "cuda", compile=compiled)
        for precision in ("fp32", "bf16"):
            try:
                with torch.inference_mode(), _autocast(device, precision):
                    for _ in range(2):  # warm-up (and compilation)
                        model(x)
                    _sync(device)
                    start = time.perf_counter()
                    for _ in range(repeats):
                        model(x)
                    _sync(device)
                seconds = time.perf_counter() - start
            except Exception as err:  # noqa: BLE001 - report, keep benchmarking the rest
                rows.append({"precision": precision, "compiled": compiled, "error": f"{type(err).__name__}: {err}"})
                continue
            rate = batch * repeats / seconds
            rows.append({"precision": precision, "compiled": compiled, "slices_per_s": round(rate, 2),
                         "tflops": round(rate * flops / 1e12, 3)})  # fmt: skip
    return {"spec": spec, "size": size, "batch": batch, "gflop_per_slice": round(flops / 1e9, 3), "runs": rows}


def make_archives(root: Path, patients: int, slices: int, size: int) -> dict[str, Path]:
    """A phantom archive (uncompressed) and the same files re-encoded as JPEG 2000 lossless."""
    import pydicom
    from pydicom.uid import JPEG2000Lossless

    from ctharmony.phantom import generate_archive

    generate_archive(root / "plain", patients=patients, slices=slices, size=size, sites=1,
                     workers=min(4, os.cpu_count() or 1))  # fmt: skip
    for path in sorted((root / "plain" / "dicom").rglob("*.dcm")):
        target = root / "j2k" / path.relative_to(root / "plain")
        target.parent.mkdir(parents=True, exist_ok=True)
        ds = pydicom.dcmread(path)
        ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg")
        ds.save_as(target)
    return {"uncompressed": root / "plain" / "dicom", "jpeg2000": root / "j2k" / "dicom"}


def bench_decode(folder: Path, limit: int) -> dict:
    """JPEG 2000 decode slices/s on CPU, and on GPU with nvImageCodec when installed."""
    import pydicom

    files = sorted(folder.rglob("*.dcm"))[:limit]
    start = time.perf_counter()
    for path in files:
        pydicom.dcmread(path).pixel_array  # noqa: B018 - the decode is the point
    result = {"files": len(files), "cpu_slices_per_s": round(len(files) / (time.perf_counter() - start), 2)}
    try:
        from nvidia import nvimgcodec  # type: ignore[import-not-found]
    except ImportError:
        result["gpu"] = "unavailable: no GPU JPEG 2000 decoder installed (nvidia-nvimgcodec)"
        return result
    decoder = nvimgcodec.Decoder()
    streams = []
    for path in files:
        ds = pydicom.dcmread(path)
        streams.append(next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1)))
    decoder.decode(streams[:1])
    start = time.perf_counter()
    decoder.decode(streams)
    torch.cuda.synchronize()
    result["gpu_slices_per_s"] = round(len(streams) / (time.perf_counter() - start), 2)
    return result


def bench_e2e(root: Path, archives: dict[str, Path], spec: str, forward_rate: float) -> dict:
    from ctharmony import cluster
    from ctharmony.archive import build_catalog
    from ctharmony.infer.conversion_plan import plan_for_cluster
    from ctharmony.infer.pipeline import ConvertOptions, convert_archive
    from ctharmony.models.io import save_model

    torch.manual_seed(0)
    harmonizer = str(save_model(build(spec), root / "harmonizer"))
    segmenter = str(save_model(build("liver-unet"), root / "segmenter"))
    cluster.connect(quiet=True)
    options = ConvertOptions(progress_interval_s=60)
    result = {"plan": plan_for_cluster(options).as_dict(), "bare_forward_slices_per_s": forward_rate}
    for name, folder in archives.items():
        frame = build_catalog(folder, root / f"{name}.parquet", progress=False)
        slices = int(frame.loc[frame["status"] == "ok", "slices"].sum())
        start = time.perf_counter()
        results = convert_archive(root / f"{name}.parquet", harmonizer, segmenter, root / f"out-{name}",
                                  options=options)  # fmt: skip
        rate = slices / (time.perf_counter() - start)
        done = int((results["status"] == "done").sum())
        result[name] = {"series": done, "slices": slices, "slices_per_s": round(rate, 2),
                        "ratio_to_bare_forward": round(rate / forward_rate, 3)}  # fmt: skip
    return result


def _ddp_worker(rank: int, world: int, spec: str, batch: int, patch: int, steps: int, port: int, queue) -> None:
    import torch.distributed as dist

    from ctharmony.models.registry import build_network, load_spec
    from ctharmony.train.gan import stage1_step

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{rank}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    torch.manual_seed(rank)
    net = build_network(load_spec(spec)).to(device)
    ddp = torch.nn.parallel.DistributedDataParallel(net, device_ids=[rank] if cuda else None)
    opt = torch.optim.Adam(ddp.parameters(), lr=1e-4)
    x = torch.rand(batch, 1, patch, patch, device=device)
    for _ in range(2):
        stage1_step(ddp, opt, x, x)
    _sync(device)
    dist.barrier()
    start = time.perf_counter()
    for _ in range(steps):
        stage1_step(ddp, opt, x, x)
    _sync(device)
    dist.barrier()
    if rank == 0:
        queue.put(world * batch * steps / (time.perf_counter() - start))
    dist.destroy_process_group()


def bench_ddp(spec: str, batch: int, patch: int, steps: int) -> dict:
    """Stage-1 samples/s with DDP on 1 GPU and on every GPU (1 CPU process without CUDA)."""
    import torch.multiprocessing as mp

    from ctharmony.net import free_port

    gpus = torch.cuda.device_count()
    result = {"spec": spec, "batch_per_worker": batch, "patch": patch}
    for world in sorted({1, max(1, gpus)}):
        ctx = mp.get_context("spawn")
        queue = ctx.SimpleQueue()
        mp.start_processes(_ddp_worker, args=(world, spec, batch, patch, steps, free_port("127.0.0.1"), queue),
                           nprocs=world, start_method="spawn")  # fmt: skip
        result[f"samples_per_s_{world}_workers"] = round(queue.get(), 2)
    if gpus <= 1:
        result["note"] = f"{gpus} GPU(s) on this machine: no multi-GPU figure"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cuda: the full benchmark; cpu: a tiny run that checks the script")
    parser.add_argument("--sections", default=None, help=f"comma-separated subset of {','.join(SECTIONS)} "
                        "(default: all on cuda; forward on cpu)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="also time torch.compile (default: on cuda only; compiling takes minutes on CPU)")
    parser.add_argument("--out", default="bench-gpu.json", help="JSON file to write")
    args = parser.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    sections = set((args.sections or ",".join(SECTIONS if cuda else ("forward",))).split(","))
    compile_too = cuda if args.compile is None else args.compile
    unknown = sections - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; choose from {SECTIONS}")
    # Full on GPU; a few seconds on CPU.
    size, spec, batch, repeats = (512, "paper", 16, 10) if cuda else (64, "cpu-small", 2, 2)
    patients, slices, archive_size = (2, 32, 512) if cuda else (1, 2, 64)
    report: dict = {"device": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__}
    started = time.perf_counter()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        root = Path(tmp)
        os.environ.setdefault("CTHARMONY_HOME", str(root / "home"))
        if "forward" in sections:
            report["forward"] = bench_forward(spec, size, batch, repeats, device, compile_too)
        if sections & {"e2e", "decode"}:
            archives = make_archives(root / "archives", patients, slices, archive_size)
            if "decode" in sections:
                report["decode"] = bench_decode(archives["jpeg2000"], limit=64)
            if "e2e" in sections:
                bare = bench_forward(spec, archive_size, batch, repeats, device, compile_too=False)["runs"]
                precision = "bf16" if cuda else "fp32"
                rate = next(r["slices_per_s"] for r in bare if r["precision"] == precision and not r["compiled"])
                report["e2e"] = bench_e2e(root, archives, spec, rate)
        if "ddp" in sections:
            report["ddp"] = bench_ddp(spec, *((8, 128, 10) if cuda else (2, 32, 2)))
    if cuda:
        report["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    report["seconds"] = round(time.perf_counter() - started, 1)
    text = json.dumps(report, indent=2)
    Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
