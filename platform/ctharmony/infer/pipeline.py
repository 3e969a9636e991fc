"""The archive conversion pipeline: catalog -> read -> harmonize -> segment -> write, on Ray Data.

One series per block, so each stage works (and fails) per series::

    from_items(ok series not yet done)           one row per block, no read tasks to starve
      .map(read_catalog_row)                     CPU tasks: DICOM -> HU volume + geometry
      .map_batches(HarmonizerPredictor, pool)    actors, model loaded once; 1/2 GPU each with GPUs
      .map_batches(SegmenterPredictor, pool)     original AND harmonized, in the same slice batches
      .map(write_converted_series)               CPU tasks: staged folder, renamed into place
    -> results rows streamed to the driver (progress) -> OUT/results.parquet

On CPU the actors take a fraction of a CPU (``actor_cpus``) so that read and write tasks always find
one (a pool holding every CPU deadlocks the job, see NOTES). With GPUs, a harmonizer and a segmenter
actor share each GPU (``num_gpus=0.5``), so one GPU is enough and N GPUs run N pairs.

Example:
    >>> results = convert_archive("catalog.parquet", "models:/ctharmony-harmonizer@champion",
    ...                           "models:/ctharmony-liver-unet@champion", "converted")  # doctest: +SKIP
    >>> results.status.value_counts()  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np

from ctharmony.infer.model_source import resolve_model_source
from ctharmony.infer.progress import ConversionProgress
from ctharmony.infer.resume import OutputLayout
from ctharmony.infer.writer import IDENTITY_FIELDS, RECORD_DEFAULTS, write_converted_series

log = logging.getLogger("ctharmony.infer")

RESULT_COLUMNS = [*IDENTITY_FIELDS, *RECORD_DEFAULTS]


@dataclasses.dataclass
class ConvertOptions:
    """Knobs of a conversion (defaults fit the cluster found)."""

    batch_slices: int = 8
    tile: int | None = None
    overlap: int = 32
    threads: int | None = None  # torch threads per actor (None: Ray's default for the actor's CPUs)
    use_gpu: bool | None = None  # None: when the cluster has GPUs
    actor_cpus: float | None = None  # None: 0.5 on CPU (headroom for tasks), 1 with GPUs
    harmonizer_actors: tuple[int, int] | None = None  # (min, max); None: from the cluster's size
    segmenter_actors: tuple[int, int] | None = None
    task_cpus: float = 0.25  # read and write tasks
    task_concurrency: int | None = None  # concurrent read (and write) tasks; None: the cluster's CPUs
    tasks_in_flight_per_actor: int | None = None  # None: Ray Data's default (2)
    wait_for_actors_s: int | None = None  # block until the pools' minimum actors are up (None: don't)
    threshold: float = 0.5
    limit: int | None = None  # convert at most this many pending series
    progress_interval_s: float = 5.0


def load_catalog_series(catalog: str | Path) -> list[dict[str, Any]]:
    """The catalog's ok series as pipeline items (files as a JSON list)."""
    import pandas as pd

    path = Path(catalog).expanduser()
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as err:
        raise FileNotFoundError(f"catalog {path}: cannot read it as Parquet: {err}") from err
    missing = {"series_key", "files", "status"} - set(frame.columns)
    if missing:
        raise ValueError(f"catalog {path}: missing column(s) {sorted(missing)}")
    frame = frame[frame["status"] == "ok"]
    items = []
    for row in frame.to_dict("records"):
        item = {field: str(row.get(field, "") or "") for field in IDENTITY_FIELDS}
        item["files"] = json.dumps([str(f) for f in row["files"]])
        items.append(item)
    return items


def read_catalog_row(row: dict[str, Any]) -> dict[str, Any]:
    """Read one series (CPU task): HU volume, geometry and tags; a failure marks the row failed."""
    from ctharmony.archive import read_series

    start = time.perf_counter()
    out = {field: row[field] for field in IDENTITY_FIELDS}
    try:
        volume = read_series(json.loads(row["files"]))
        out.update(hu=np.ascontiguousarray(volume.hu, dtype=np.float32), status="ok", reason="",
                   spacing=np.asarray(volume.spacing, np.float64), origin=np.asarray(volume.origin, np.float64),
                   direction=np.asarray(volume.direction, np.float64).reshape(9), tags=pickle.dumps(volume.tags))
    except Exception as err:  # noqa: BLE001 - recorded, the job goes on
        out.update(hu=np.zeros((0, 0, 0), np.float32), status="failed", reason=f"read: {err}",
                   spacing=np.zeros(3), origin=np.zeros(3), direction=np.zeros(9), tags=pickle.dumps({}))
    out["seconds_read"] = time.perf_counter() - start
    return out


def _stage_resources(options: ConvertOptions, cpus: float, gpus: float) -> dict[str, Any]:
    use_gpu = options.use_gpu if options.use_gpu is not None else gpus >= 1
    if use_gpu:
        pairs = max(1, int(gpus))
        remote = {"num_gpus": 0.5, "num_cpus": options.actor_cpus or 1.0}
    else:
        pairs = max(1, int(cpus // 4))
        remote = {"num_cpus": options.actor_cpus or 0.5}
    return {
        "remote": remote,
        "harmonizer": options.harmonizer_actors or (1, pairs),
        "segmenter": options.segmenter_actors or (1, pairs),
        "device": None if use_gpu else "cpu",
    }


def build_dataset(items, harmonizer, segmenter, out: Path, options: ConvertOptions, cpus: float, gpus: float,
                  harmonizer_cls=None, segmenter_cls=None):
    """The lazy Ray Dataset of results rows (one per item)."""
    import ray

    from ctharmony.infer.predictors import HarmonizerPredictor, SegmenterPredictor

    plan = _stage_resources(options, cpus, gpus)
    common = {"batch_slices": options.batch_slices, "tile": options.tile, "overlap": options.overlap,
              "threads": options.threads, "device": plan["device"]}
    tasks = ray.data.TaskPoolStrategy(size=options.task_concurrency or max(1, int(cpus)))
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    ds = ds.map(read_catalog_row, num_cpus=options.task_cpus, compute=tasks)
    ds = ds.map_batches(
        harmonizer_cls or HarmonizerPredictor, fn_constructor_args=(harmonizer,), fn_constructor_kwargs=common,
        compute=ray.data.ActorPoolStrategy(min_size=plan["harmonizer"][0], max_size=plan["harmonizer"][1],
                                           max_tasks_in_flight_per_actor=options.tasks_in_flight_per_actor),
        batch_size=1, batch_format="numpy", **plan["remote"],
    )
    ds = ds.map_batches(
        segmenter_cls or SegmenterPredictor, fn_constructor_args=(segmenter,),
        fn_constructor_kwargs={**common, "threshold": options.threshold},
        compute=ray.data.ActorPoolStrategy(min_size=plan["segmenter"][0], max_size=plan["segmenter"][1],
                                           max_tasks_in_flight_per_actor=options.tasks_in_flight_per_actor),
        batch_size=1, batch_format="numpy", **plan["remote"],
    )
    return ds.map(write_converted_series, fn_kwargs={"out": str(out)}, num_cpus=options.task_cpus, compute=tasks)


def _execute(pending, harmonizer, segmenter, layout: OutputLayout, options: ConvertOptions,
             progress: ConversionProgress, address, harmonizer_cls, segmenter_cls) -> dict[str, dict[str, Any]]:
    """Run the Ray Data pipeline over ``pending`` items; returns the failed results rows by series key."""
    from ray.data import DataContext

    from ctharmony import cluster

    info = cluster.connect(address)
    context = DataContext.get_current()
    saved = {"max_errored_blocks": context.max_errored_blocks,
             "wait_for_min_actors_s": context.wait_for_min_actors_s}
    context.max_errored_blocks = len(pending)  # a lost block is reported below, never silently dropped
    if options.wait_for_actors_s:
        context.wait_for_min_actors_s = options.wait_for_actors_s
    failed: dict[str, dict[str, Any]] = {}
    seen = set()
    try:
        ds = build_dataset(pending, harmonizer, segmenter, layout.root, options, info.cpus, info.gpus,
                           harmonizer_cls, segmenter_cls)
        for record in ds.iter_rows():
            record = dict(record)
            seen.add(record["series_key"])
            progress.update(record)
            if record["status"] != "done":
                failed[record["series_key"]] = record
    finally:
        for name, value in saved.items():  # the context is this process's global: leave it as found
            setattr(context, name, value)
    for item in pending:
        if item["series_key"] not in seen and not layout.is_done(item["series_key"]):
            lost = {**{f: item[f] for f in IDENTITY_FIELDS}, **RECORD_DEFAULTS,
                    "reason": "lost: its Ray Data block failed (see the Ray logs)"}
            failed[item["series_key"]] = lost
            progress.update(lost)
    return failed


def convert_archive(
    catalog: str | Path,
    harmonizer: Any,
    segmenter: Any,
    out: str | Path,
    *,
    address: str | None = None,
    options: ConvertOptions | None = None,
    harmonizer_cls: type | None = None,
    segmenter_cls: type | None = None,
):
    """Convert and segment every ok series of a catalog not converted yet; returns the results table.

    Args:
        catalog: the catalog Parquet file (``ctharmony catalog``).
        harmonizer, segmenter: MLflow model URIs or local paths (or loaded modules, in tests).
        out: the output folder (resumable: a rerun converts only what is missing).
        address: Ray address (default: ``$RAY_ADDRESS``, else an embedded local cluster).
        options: pipeline knobs.
        harmonizer_cls, segmenter_cls: predictor classes (default: the package's).
    """
    import pandas as pd

    options = options or ConvertOptions()
    harmonizer, segmenter = (m if not isinstance(m, str | Path) else resolve_model_source(m)
                             for m in (harmonizer, segmenter))
    layout = OutputLayout(out)
    items = load_catalog_series(catalog)
    layout.prepare()
    done = layout.completed_keys()
    pending = [item for item in items if item["series_key"] not in done]
    if options.limit is not None:
        pending = pending[: options.limit]
    already = sum(item["series_key"] in done for item in items)
    log.info("catalog %s: %d ok series, %d already converted, %d to convert -> %s",
             Path(catalog).name, len(items), already, len(pending), layout.root)
    unknown = sum(item["protocol"] in ("", "unknown") for item in pending)
    if unknown:
        log.info("%d series of unknown protocol: converted like the others (the harmonizer maps any input "
                 "reconstruction to the reference look)", unknown)
    progress = ConversionProgress(total=len(pending), skipped=already,
                                  interval_s=options.progress_interval_s)
    failed = _execute(pending, harmonizer, segmenter, layout, options, progress, address,
                      harmonizer_cls, segmenter_cls) if pending else {}
    progress.summary()
    records = layout.completed_records()
    models = {(r["model_name"], r["model_version"], r["segmenter_name"], r["segmenter_version"]) for r in records}
    if len(models) > 1:
        log.warning("%s holds outputs of %d different model versions %s: use one output folder per model "
                    "version (a rerun only converts what is missing)", layout.root, len(models), sorted(models))
    done_now = {r["series_key"] for r in records}
    records += [r for key, r in sorted(failed.items()) if key not in done_now]
    frame = pd.DataFrame(records, columns=RESULT_COLUMNS) if records else pd.DataFrame(columns=RESULT_COLUMNS)
    tmp = layout.results_path.with_suffix(".parquet.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, layout.results_path)
    log.info("results: %s (%d rows)", layout.results_path, len(frame))
    return frame
