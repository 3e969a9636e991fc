"""Parameter counts and CPU forward throughput (slices/s at 512 x 512) of the generator specs.

    .venv/bin/python bench/bench_models.py [--size 512] [--batch 1] [--repeats 3] [--threads N]

Prints one line per spec, measured in this run, and the throughput ratio cpu-small / paper.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))

import torch  # noqa: E402

from ctharmony.models import build  # noqa: E402
from ctharmony.models.registry import build_discriminator, load_spec  # noqa: E402


def throughput(model: torch.nn.Module, size: int, batch: int, repeats: int) -> float:
    x = torch.randn(batch, 1, size, size) * 300.0
    with torch.inference_mode():
        model(x)  # warm-up
        started = time.perf_counter()
        for _ in range(repeats):
            model(x)
        return batch * repeats / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"CPU forward, {args.size}x{args.size}, batch {args.batch}, {torch.get_num_threads()} torch threads")
    rates = {}
    for name in ("cpu-small", "paper", "liver-unet"):
        model = build(name).eval()
        params = sum(p.numel() for p in model.parameters())
        line = f"{name:<11} {model.kind:<10} params {params:>10,d}"
        if model.kind == "harmonizer":
            d_params = sum(p.numel() for p in build_discriminator(load_spec(name)).parameters())
            line += f"  (discriminator {d_params:,d})"
        rates[name] = throughput(model, args.size, args.batch, args.repeats)
        print(f"{line}  {rates[name]:8.2f} slices/s")
    print(f"throughput ratio cpu-small / paper: {rates['cpu-small'] / rates['paper']:.1f}x")


if __name__ == "__main__":
    main()
