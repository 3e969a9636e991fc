"""Ray job entry: train the harmonizer GAN with Ray Train DDP and register it in MLflow.

    ray job submit --working-dir . --runtime-env-json '{"py_modules": ["platform/ctharmony"]}' -- \
        python jobs/train_gan.py --catalog catalog.parquet --spec models/cpu-small.yaml --workers 2 \
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
    parser.add_argument("--gpu", action="store_true", help="one GPU per worker")
    parser.add_argument("--storage", default=None, help="checkpoint storage path")
    parser.add_argument("--name", default=None, help="run name (a rerun with the same name resumes)")
    parser.add_argument("--resume", action="store_true", help="continue the newest run of this spec")
    parser.add_argument("--address", default=None, help="Ray address (default: $RAY_ADDRESS)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from ctharmony import cluster
    from ctharmony.train.launch import train

    cluster.connect(args.address)
    overrides = args.overrides + ([f"train.segmenter={args.segmenter}"] if args.segmenter else [])
    outcome = train(args.spec, Path(args.catalog), workers=args.workers, use_gpu=args.gpu,
                    storage_path=args.storage, name=args.name, resume=args.resume, overrides=overrides)
    print(f"harmonizer {outcome.model_uri} version {outcome.registered_version}; final metrics:")
    for key, value in sorted(outcome.metrics.items()):
        if key.startswith("val/"):
            print(f"  {key}: {value:.4g}")


if __name__ == "__main__":
    main()
