"""Ray job entry: convert and segment an archive (the same code as ``ctharmony convert``).

    RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 --working-dir jobs \
        --runtime-env-json '{"py_modules": ["platform/ctharmony"]}' -- \
        python convert_archive.py --catalog C --harmonizer MODEL --segmenter MODEL --out OUT

Every ``ctharmony convert`` option works here: ``--plan`` prints the resource plan (actor pools, GPUs and
CPUs per actor, batch size) as JSON without converting; ``--gpu/--no-gpu``, ``--gpus N``,
``--gpus-per-actor``/``--actors-per-gpu``, ``--cpus-per-actor``, ``--threads``, ``--precision``, ``--compile``;
``--harmonize-reference`` harmonizes reference-protocol (M80) series too (by default they pass through unchanged).
"""

from __future__ import annotations

import sys

from ctharmony.cli import app

if __name__ == "__main__":
    app(["convert", *sys.argv[1:]], prog_name="convert_archive.py")
