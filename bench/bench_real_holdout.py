"""Does real anatomy teach the liver segmenter? Leave one real patient out, phantom-only vs phantom + real.

Run (docs/real-anatomy.md gives the simulate / catalog commands that make the two archives)::

    .venv/bin/python bench/bench_real_holdout.py --phantom /tmp/realexp/phantom --real /tmp/realexp/real \\
        --cases data/real [--epochs 10] [--seed 0] [--threads 1] [--only CASE] [--json out.json]

For each real case ``c`` of the real archive (``phantom.parquet``'s ``real_case``): train ``liver-unet``
(the spec as packaged, ``train.seed`` = ``--seed``) twice, identically but for the data:

- phantom only: the phantom archive's M80 series;
- real anatomy: the same plus the real archive's other cases (re-simulated M80) and their original images
  (``originals``, :mod:`ctharmony.train.segmenter_data`); case ``c`` is excluded everywhere.

Then pooled Dice of each model against case ``c``'s true liver on its re-simulated M80 (every simulated
copy: as it is and augmented) and on its original image (resampled as the mix resamples originals).
Nothing is chosen on the held-out case: spec, epochs, seed and mix are fixed before the loop. The segmenter
keeps the epoch of ``train.keep`` (default: best validation Dice on held-out *phantom* patients;
``--keep last`` for the previous behaviour); the JSON records that epoch and the validation curve.
Both archives must be catalogued (``catalog.parquet`` in each folder).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ctharmony.archive import read_catalog
from ctharmony.models.registry import load_spec
from ctharmony.simulate.real_cases import origins
from ctharmony.train.segmenter import evaluate_dice, fit_segmenter, m80_records, read_mask_on_grid
from ctharmony.train.segmenter_data import ArchiveSource, OriginalCase, SegmenterData, mixed_pairs, original_pair


def case_files(cases_dir: Path, name: str) -> OriginalCase:
    return OriginalCase(cases_dir / name, cases_dir / f"{name}-liver.nii.gz")


def held_out_pairs(real: Path, case: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """The held-out case's re-simulated M80 series with their true masks."""
    cases = origins(pd.read_parquet(real / "phantom.parquet"))
    rows = [r for r in read_catalog(real / "catalog.parquet").series() if cases.get(r.study_uid) == case]
    return [read_mask_on_grid(r["mask"], r["files"]) for r in m80_records(rows, real / "masks")]


def fit(spec, train: list, val: list) -> tuple[object, int, list[float]]:
    """The segmenter, the epoch it kept, and its validation Dice after each epoch."""
    curve: list[float] = []
    kept: dict[str, int] = {}
    model = fit_segmenter(spec, train, val, on_epoch=lambda e, m: curve.append(round(m["val/dice"], 3)),
                          on_keep=lambda e, m: kept.update(epoch=e))
    return model, kept["epoch"], curve


def print_table(results: list[dict]) -> None:
    """The results as a Markdown table, one row per held-out case (runs of one case's arms merged)."""
    merged: dict[str, dict] = {}
    for r in results:
        merged.setdefault(r["held_out"], {}).update(r)

    def cell(r: dict, key: str) -> str:
        return f"{r[key]:.3f}" if key in r else "-"

    print("\n| held-out case | phantom-only M80 | real-anatomy M80 | phantom-only original | real-anatomy original |")
    print("|---|---|---|---|---|")
    for name, r in sorted(merged.items()):
        print(f"| {name} | {cell(r, 'phantom-only/m80')} | {cell(r, 'real-anatomy/m80')} | "
              f"{cell(r, 'phantom-only/original')} | {cell(r, 'real-anatomy/original')} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--phantom", type=Path, help="catalogued phantom-anatomy archive")
    ap.add_argument("--real", type=Path, help="catalogued multi-case real-anatomy archive")
    ap.add_argument("--cases", type=Path, default=Path("data/real"), help="folder of <case>/ + <case>-liver.nii.gz")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--slices", type=int, default=16, help="central slices of each original")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--keep", choices=("best", "last"), default="best", help="the epoch the segmenter keeps "
                    "(train.keep: best validation Dice, or the last)")
    ap.add_argument("--only", action="append", default=None, help="hold out only this case (repeatable): "
                    "run the folds as separate processes")
    ap.add_argument("--arms", default="phantom-only,real-anatomy", help="comma-separated arms to train "
                    "(the phantom-only model does not depend on the held-out case: trained once per process)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--table", type=Path, nargs="*", default=None, help="only print the table of these JSON "
                    "results (several runs' folds and arms merged)")
    args = ap.parse_args()
    if args.table is not None:
        print_table([r for p in args.table for r in json.loads(p.read_text())["results"]])
        return
    if args.phantom is None or args.real is None:
        ap.error("--phantom and --real are needed (or --table)")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    spec = load_spec("liver-unet", [f"train.epochs_stage1={args.epochs}", f"train.seed={args.seed}",
                                     f"train.keep={args.keep}"])
    names = sorted(set(pd.read_parquet(args.real / "phantom.parquet")["real_case"]))
    phantom = ArchiveSource(args.phantom / "catalog.parquet", args.phantom / "masks")
    size = int(read_catalog(phantom.catalog).series()[0].rows)
    wanted = [a.strip() for a in args.arms.split(",") if a.strip()]
    models: dict[SegmenterData, tuple] = {}  # model, kept epoch, validation curve
    results = []
    for held in [n for n in names if args.only is None or n in args.only]:
        others = [n for n in names if n != held]
        arms = {
            "phantom-only": SegmenterData(archives=(phantom,), size=size, slices=args.slices),
            "real-anatomy": SegmenterData(
                archives=(phantom, ArchiveSource(args.real / "catalog.parquet", args.real / "masks", (held,))),
                originals=tuple(case_files(args.cases, n) for n in others), size=size, slices=args.slices),
        }
        test_sim = held_out_pairs(args.real, held)
        test_orig = [original_pair(case_files(args.cases, held), size, slices=args.slices)]
        row = {"held_out": held, "copies": len(test_sim), "trained_on_real": others}
        for arm, data in arms.items():
            if arm not in wanted:
                continue
            start = time.perf_counter()
            train, val = mixed_pairs(data, spec.train.target_protocol, spec.train.val_fraction, spec.train.seed)
            if data not in models:
                models[data] = fit(spec, train, val)
            model, epoch, curve = models[data]
            row[f"{arm}/epoch"] = epoch  # the epoch kept (train.keep; best validation Dice by default)
            row[f"{arm}/val_curve"] = curve  # validation Dice after each epoch
            row[f"{arm}/m80"] = round(evaluate_dice(model, test_sim), 3)
            row[f"{arm}/original"] = round(evaluate_dice(model, test_orig), 3)
            row[f"{arm}/val"] = round(evaluate_dice(model, val), 3)
            row[f"{arm}/seconds"] = round(time.perf_counter() - start, 1)
            logging.info("%s %s: %s", held, arm, {k: v for k, v in row.items() if k.startswith(arm)})
        results.append(row)
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps({"epochs": args.epochs, "seed": args.seed, "keep": args.keep,
                                         "results": results}, indent=1))


if __name__ == "__main__":
    main()
