"""Ray job entry: train the harmonizer GAN with Ray Train DDP and register it in MLflow.

    ray job submit --working-dir jobs --runtime-env-json '{"py_modules": ["platform/ctharmony"]}' -- \
        python train_gan.py --catalog catalog.parquet --spec /data/specs/cpu-small.yaml --workers 2 \
        --segmenter models:/ctharmony-liver-unet/1 --set train.epochs_stage1=4
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", required=True, help="catalog Parquet file")
    parser.add_argument("--spec", default="models/cpu-small.yaml", help="harmonizer spec name or YAML path")
    parser.add_argument("--workers", type=int, default=2, help="Ray Train DDP workers")
    parser.add_argument("--segmenter", default=None, help="reference segmenter model URI or path")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="spec override key=value")
    parser.add_argument("--gpu", action=argparse.BooleanOptionalAction, default=None,
                        help="GPU workers (default: when the cluster has them or can start GPU workers)")
    parser.add_argument("--gpus", type=int, default=None, help="GPUs the cluster can have (planning hint)")
    parser.add_argument("--autoscaling-config", default=None, help="cluster.yaml naming the GPU node types")
    parser.add_argument("--gpus-per-worker", type=float, default=None, help="GPUs per DDP worker (default 1)")
    parser.add_argument("--cpus-per-worker", type=float, default=None, help="CPUs per worker (default 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per worker")
    parser.add_argument("--storage", default=None, help="checkpoint storage path")
    parser.add_argument("--name", default=None, help="run name (a rerun with the same name resumes)")
    parser.add_argument("--resume", action="store_true", help="continue the newest run of this spec")
    parser.add_argument("--address", default=None, help="Ray address (default: $RAY_ADDRESS)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from ctharmony import cluster
    from ctharmony.gpu_capacity import discover_gpu_capacity
    from ctharmony.train.launch import train

    info = cluster.connect(args.address)
    capacity = discover_gpu_capacity(info.gpus, hint_gpus=args.gpus, autoscaling_config=args.autoscaling_config,
                                     joined=not info.embedded)
    overrides = args.overrides + ([f"train.segmenter={args.segmenter}"] if args.segmenter else [])
    overrides += [f"train.threads_per_worker={args.threads}"] if args.threads else []
    outcome = train(args.spec, Path(args.catalog), workers=args.workers, use_gpu=args.gpu, capacity=capacity,
                    gpus_per_worker=args.gpus_per_worker, cpus_per_worker=args.cpus_per_worker,
                    storage_path=args.storage, name=args.name, resume=args.resume, overrides=overrides)
    print(f"harmonizer {outcome.model_uri} version {outcome.registered_version}; final metrics:")
    for key, value in sorted(outcome.metrics.items()):
        if key.startswith("val/"):
            print(f"  {key}: {value:.4g}")


if __name__ == "__main__":
    main()
