"""Ray job entry: sweep the loss weights λ1, λ2, λ3 with Ray Tune (the same code as ``ctharmony sweep``).

    RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 --working-dir jobs \
        --runtime-env-json '{"py_modules": ["platform/ctharmony"]}' -- \
        python sweep_lambdas.py --catalog /data/catalog.parquet --spec cpu-small \
        --trials 8 --workers-per-trial 2 --segmenter models:/ctharmony-liver-unet/1 [--resume]

Resources as in ``ctharmony sweep``: ``--gpu/--no-gpu`` (default: when the cluster has or can start GPU
workers), ``--gpus N``, ``--gpus-per-worker`` (0.5 with one worker per trial packs two trials per GPU),
``--cpus-per-worker``, ``--max-concurrent``.
"""

from __future__ import annotations

import sys

from ctharmony.cli import app

if __name__ == "__main__":
    app(["sweep", *sys.argv[1:]], prog_name="sweep_lambdas.py")
