"""Ray job entry: catalog a DICOM archive (the same code as ``ctharmony catalog``).

    RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 --working-dir jobs \
        --runtime-env-json '{"py_modules": ["platform/ctharmony"]}' -- \
        python build_catalog.py /data/archive --out /data/catalog.parquet
"""

from __future__ import annotations

import sys

from ctharmony.cli import app

if __name__ == "__main__":
    app(["catalog", *sys.argv[1:]], prog_name="build_catalog.py")
