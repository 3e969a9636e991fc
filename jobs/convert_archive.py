"""Ray job entry: convert and segment an archive (the same code as ``ctharmony convert``).

    RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 --working-dir . \
        --runtime-env-json '{"py_modules": ["platform/ctharmony"]}' -- \
        python jobs/convert_archive.py --catalog C --harmonizer MODEL --segmenter MODEL --out OUT
"""

from __future__ import annotations

import sys

from ctharmony.cli import app

if __name__ == "__main__":
    app(["convert", *sys.argv[1:]], prog_name="convert_archive.py")
