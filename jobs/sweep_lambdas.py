"""Ray job entry: sweep the loss weights λ1, λ2, λ3 with Ray Tune (the same code as ``ctharmony sweep``).

    RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 --working-dir . \
        --runtime-env-json '{"py_modules": ["platform/ctharmony"]}' -- \
        python jobs/sweep_lambdas.py --catalog catalog.parquet --spec models/cpu-small.yaml \
        --trials 8 --workers-per-trial 2 --segmenter models:/ctharmony-liver-unet/1 [--resume]
"""

from __future__ import annotations

import sys

from ctharmony.cli import app

if __name__ == "__main__":
    app(["sweep", *sys.argv[1:]], prog_name="sweep_lambdas.py")
