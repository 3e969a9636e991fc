"""Ray job entry: train the harmonizer GAN with Ray Train DDP (the same code as ``ctharmony train``).

    RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 --working-dir jobs \
        --runtime-env-json '{"py_modules": ["platform/ctharmony"]}' -- \
        python train_gan.py --catalog /data/catalog.parquet --spec cpu-small --workers 2 \
        --segmenter models:/ctharmony-liver-unet@champion --set train.epochs_stage1=4

Every ``ctharmony train`` option works here: ``--resume``, ``--name``, ``--storage``, ``--gpu/--no-gpu``,
``--gpus N``, ``--gpus-per-worker``, ``--cpus-per-worker``, ``--threads``; without ``--segmenter`` the
registered champion ``models:/ctharmony-liver-unet@champion`` is used.
"""

from __future__ import annotations

import sys

from ctharmony.cli import app

if __name__ == "__main__":
    app(["train", *sys.argv[1:]], prog_name="train_gan.py")
