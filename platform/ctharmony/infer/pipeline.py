"""The archive conversion pipeline: catalog -> read -> harmonize -> segment -> write, on Ray Data.

One series per block, so each stage works (and fails) per series::

    from_items(ok series not yet done)           one row per block, no read tasks to starve
      .map(read_catalog_row)                     CPU tasks: DICOM -> HU volume + geometry
      .map_batches(HarmonizerPredictor, pool)    actors, model loaded once; 1/2 GPU each with GPUs
      .map_batches(SegmenterPredictor, pool)     original AND harmonized, in the same slice batches
                                                 (on CPU one pool of HarmonizeAndSegment actors runs both)
      .map(write_converted_series)               CPU tasks: staged folder, renamed into place
    -> results rows streamed to the driver (progress) -> OUT/results.parquet

A series of the reference protocol (M80) is passed through unchanged by default
(``ConvertOptions.reference_passthrough``): the harmonizer actor hands its HU on bit for bit without
touching the model, the segmenter's harmonized mask is its original mask, its derived series is still
written, and the results' ``harmonizer_action`` says "passthrough" ("harmonized" for the others).

On CPU the actors take a fraction of a CPU (``actor_cpus``) so that read and write tasks always find
one (a pool holding every CPU deadlocks the job, see NOTES). With GPUs, a harmonizer and a segmenter
actor share each GPU (``num_gpus=0.5``), so one GPU is enough and N GPUs run N pairs.

Example::

    results = convert_archive("catalog.parquet", "models:/ctharmony-harmonizer@champion",
                              "models:/ctharmony-liver-unet@champion", "converted")
    results.status.value_counts()
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ctharmony.archive.protocols import REFERENCE_PROTOCOL
from ctharmony.infer.model_source import resolve_model_source
from ctharmony.infer.policy import Policies, skip_reason
from ctharmony.infer.progress import ConversionProgress
from ctharmony.infer.resume import OutputLayout
from ctharmony.infer.writer import IDENTITY_FIELDS, RECORD_DEFAULTS, tag_columns, write_converted_series

log = logging.getLogger("ctharmony.infer")

RESULT_COLUMNS = [*IDENTITY_FIELDS, *RECORD_DEFAULTS]


@dataclasses.dataclass
class ConvertOptions:
    """Knobs of a conversion (defaults fit the cluster found).

    ``reference_passthrough`` (default True): a series whose catalog protocol is ``reference_protocol``
    (default ``REFERENCE_PROTOCOL``, "M80") is not given to the harmonizer, GAN or baseline alike: its
    harmonized HU are its input HU, bit for bit, so its harmonized mask is its original mask; its derived
    DICOM series is still written and the results' ``harmonizer_action`` says "passthrough". False
    (``ctharmony convert --harmonize-reference``) harmonizes every series.

    Example::

        ConvertOptions(batch_slices=4)                                # M80 passes through
        ConvertOptions(reference_passthrough=False)                   # M80 is harmonized too
    """

    batch_slices: int | None = None  # None: from free GPU memory on CUDA, 8 on CPU (ctharmony.infer.conversion_plan)
    tile: int | None = None
    overlap: int = 32
    threads: int | None = None  # torch threads per actor (None: Ray's default on GPU; on CPU the conversion plan's)
    use_gpu: bool | None = None  # None: when the cluster has or can get GPUs (ctharmony.gpu_capacity)
    actor_cpus: float | None = None  # None: 0.5 on CPU (headroom for tasks), 1 with GPUs
    gpus_per_actor: float = 0.5  # 0.5: a harmonizer and a segmenter actor share each GPU
    max_gpus: int | None = None  # hint: GPUs the cluster can have when no autoscaler config says so
    autoscaling_config: str | None = None  # a cluster.yaml to read GPU node types from
    precision: str = "auto"  # auto (CUDA: bf16, else fp16; CPU: bf16 where native, else fp32), bf16, fp16, fp32
    channels_last: bool | None = None  # None: on GPU, and on CPU for ctharmony's networks
    compile: bool = False  # torch.compile the models (falls back to eager when compiling fails)
    stages_in_one_actor: bool | None = None  # None: on CPU (one pool runs both networks; its bounds: harmonizer_actors)
    harmonizer_actors: tuple[int, int] | None = None  # (min, max); None: from the cluster's size
    segmenter_actors: tuple[int, int] | None = None
    task_cpus: float = 0.25  # read and write tasks
    task_concurrency: int | None = None  # concurrent read (and write) tasks; None: the cluster's CPUs
    tasks_in_flight_per_actor: int | None = None  # None: Ray Data's default (2)
    wait_for_actors_s: int | None = None  # block until the pools' minimum actors are up (None: don't)
    threshold: float = 0.5
    segment_original: bool = True  # False (convert --no-original-mask): the harmonized series' mask only
    policies: Policies = dataclasses.field(default_factory=Policies)  # tilted / gapped / unknown series
    limit: int | None = None  # convert at most this many pending series
    progress_interval_s: float = 5.0
    reference_passthrough: bool = True  # reference-protocol series pass through unchanged (see above)
    reference_protocol: str = REFERENCE_PROTOCOL

    @property
    def passthrough_protocol(self) -> str | None:
        """The catalog protocol passed through unchanged, or None when every series is harmonized."""
        return self.reference_protocol if self.reference_passthrough else None


def load_catalog_series(catalog: str | Path) -> list[dict[str, Any]]:
    """The catalog's ok series as pipeline items: identity, ``files`` (a list) and the policies' geometry.

    Raises:
        CatalogError: the catalog is unreadable, lacks columns, or repeats a series_key.
    """
    from ctharmony.archive import CatalogError, read_catalog

    path = Path(catalog).expanduser()
    rows = read_catalog(path).series(status="ok")
    items = [{**{field: getattr(row, field) for field in IDENTITY_FIELDS}, "files": list(row.files),
              "geometry": row.geometry, "tilt_degrees": row.tilt_degrees, "largest_gap_mm": row.largest_gap_mm}
             for row in rows]
    keys = [item["series_key"] for item in items]
    if len(set(keys)) != len(keys):
        raise CatalogError(f"catalog {path}: series_key is not unique; rebuild it with `ctharmony catalog`")
    return items


def read_catalog_row(row: dict[str, Any]) -> dict[str, Any]:
    """Read one series (CPU task): HU volume, geometry and tags (``tag_*`` columns); a failure marks the row."""
    from ctharmony.archive import read_series

    start = time.perf_counter()
    out = {field: row[field] for field in IDENTITY_FIELDS}
    try:
        if isinstance(row["files"], str | bytes):
            raise TypeError("the item's files must be a list of paths, not text")
        volume = read_series([str(f) for f in row["files"]])
        out.update(hu=np.ascontiguousarray(volume.hu, dtype=np.float32), status="ok", reason="",
                   spacing=np.asarray(volume.spacing, np.float64), origin=np.asarray(volume.origin, np.float64),
                   direction=np.asarray(volume.direction, np.float64).reshape(9),
                   positions=np.asarray(volume.positions, np.float64), **tag_columns(volume.tags))
    except Exception as err:  # noqa: BLE001 - recorded, the job goes on
        out.update(hu=np.zeros((0, 0, 0), np.float32), status="failed", reason=f"read: {err}",
                   spacing=np.zeros(3), origin=np.zeros(3), direction=np.zeros(9),
                   positions=np.zeros((0, 3)), **tag_columns({}))
    out["seconds_read"] = time.perf_counter() - start
    return out


def build_dataset(items, harmonizer, segmenter, out: Path, options: ConvertOptions, cpus: float, gpus: float,
                  harmonizer_cls=None, segmenter_cls=None):
    """The lazy Ray Dataset of results rows (one per item)."""
    import ray

    from ctharmony.infer.conversion_plan import stage_resources
    from ctharmony.infer.predictors import HarmonizeAndSegment, HarmonizerPredictor, SegmenterPredictor

    plan = stage_resources(options, cpus, gpus)  # the resource decision: ctharmony.infer.conversion_plan
    common = {"tile": options.tile, "overlap": options.overlap, "device": plan["device"], **plan["predictor"]}
    tasks = ray.data.TaskPoolStrategy(size=options.task_concurrency or max(1, int(cpus)))
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    ds = ds.map(read_catalog_row, num_cpus=options.task_cpus, compute=tasks)
    harmonizer_kwargs = {**common, "passthrough_protocol": options.passthrough_protocol}
    segmenter_kwargs = {**common, "threshold": options.threshold, "segment_original": options.segment_original}
    if plan["plan"].stages_in_one_actor:
        ds = ds.map_batches(
            HarmonizeAndSegment, fn_constructor_args=(harmonizer, segmenter),
            fn_constructor_kwargs={"harmonizer_kwargs": harmonizer_kwargs, "segmenter_kwargs": segmenter_kwargs,
                                   "harmonizer_cls": harmonizer_cls, "segmenter_cls": segmenter_cls},
            compute=ray.data.ActorPoolStrategy(min_size=plan["harmonizer"][0], max_size=plan["harmonizer"][1],
                                               max_tasks_in_flight_per_actor=options.tasks_in_flight_per_actor),
            batch_size=1, batch_format="numpy", **plan["remote"],
        )
        return ds.map(write_converted_series, fn_kwargs={"out": str(out)}, num_cpus=options.task_cpus,
                      compute=tasks)
    ds = ds.map_batches(
        harmonizer_cls or HarmonizerPredictor, fn_constructor_args=(harmonizer,),
        fn_constructor_kwargs=harmonizer_kwargs,
        compute=ray.data.ActorPoolStrategy(min_size=plan["harmonizer"][0], max_size=plan["harmonizer"][1],
                                           max_tasks_in_flight_per_actor=options.tasks_in_flight_per_actor),
        batch_size=1, batch_format="numpy", **plan["remote"],
    )
    ds = ds.map_batches(
        segmenter_cls or SegmenterPredictor, fn_constructor_args=(segmenter,),
        fn_constructor_kwargs=segmenter_kwargs,
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

    Raises:
        OutputBusyError: another run is writing ``out`` (the message names its pid, host and start).
    """
    layout = OutputLayout(out)
    with layout.exclusive():  # one run per OUT; staging and temporary files belong to this run
        return _convert_holding(layout, catalog, harmonizer, segmenter, address, options, harmonizer_cls,
                                segmenter_cls)


def _convert_holding(layout: OutputLayout, catalog, harmonizer, segmenter, address, options, harmonizer_cls,
                     segmenter_cls):
    """The body of :func:`convert_archive`, run while this process holds the output folder."""
    options = options or ConvertOptions()
    harmonizer, segmenter = (m if not isinstance(m, str | Path) else resolve_model_source(m)
                             for m in (harmonizer, segmenter))
    items = load_catalog_series(catalog)
    layout.prepare()
    done = layout.completed_keys()
    skipped = {item["series_key"]: why for item in items if (why := skip_reason(item, options.policies))}
    pending = [item for item in items if item["series_key"] not in done and item["series_key"] not in skipped]
    if options.limit is not None:
        pending = pending[: options.limit]
    already = sum(item["series_key"] in done for item in items)
    log.info("catalog %s: %d ok series, %d already converted, %d to convert, %d set aside by policy -> %s",
             Path(catalog).name, len(items), already, len(pending), len(skipped), layout.root)
    for why, count in collections.Counter(w.split(":")[0] for w in skipped.values()).items():
        log.info("%s: %d series not converted", why, count)
    reference = sum(item["protocol"] == options.passthrough_protocol for item in pending)
    if reference:
        log.info("%d series of the reference protocol %s: passed through unchanged, not harmonized "
                 "(--harmonize-reference harmonizes them)", reference, options.passthrough_protocol)
    unknown = sum(item["protocol"] in ("", "unknown") for item in pending)
    if unknown:
        log.info("%d series of unknown protocol: converted like the others (policy on_unknown=convert)", unknown)
    progress = ConversionProgress(total=len(pending), skipped=already,
                                  interval_s=options.progress_interval_s)
    failed = _execute(pending, harmonizer, segmenter, layout, options, progress, address,
                      harmonizer_cls, segmenter_cls) if pending else {}
    progress.summary()
    frame = results_frame(items, layout, failed, skipped)
    tmp = layout.results_path.with_name(f".results.{os.getpid()}.{time.time_ns()}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, layout.results_path)
    counts = ", ".join(f"{status} {n}" for status, n in frame["status"].value_counts().sort_index().items())
    log.info("results: %s (%d rows, one per ok series of the catalog: %s)", layout.results_path, len(frame),
             counts or "none")
    return frame


def results_frame(items: list[dict[str, Any]], layout: OutputLayout, failed: dict[str, dict[str, Any]],
                  skipped: dict[str, str]):
    """One results row per ok series of the catalog, in catalog order: done, failed, skipped or pending."""
    import pandas as pd

    completed = {r["series_key"]: r for r in layout.completed_records()}
    models = {(r["model_name"], r["model_version"], r["segmenter_name"], r["segmenter_version"])
              for r in completed.values()}
    if len(models) > 1:
        log.warning("%s holds outputs of %d different model versions %s: use one output folder per model "
                    "version (a rerun only converts what is missing)", layout.root, len(models), sorted(models))
    foreign = set(completed) - {item["series_key"] for item in items}
    if foreign:
        log.warning("%s holds %d converted series that are not in this catalog: left in place, not in "
                    "results.parquet", layout.root, len(foreign))
    records = []
    for item in items:
        key = item["series_key"]
        identity = {field: item[field] for field in IDENTITY_FIELDS}
        if key in completed:  # a record written before a column existed gets its default
            records.append({**RECORD_DEFAULTS, "harmonizer_action": "harmonized", **completed[key]})
        elif key in failed:
            records.append(failed[key])
        elif key in skipped:
            records.append({**identity, **RECORD_DEFAULTS, "status": "skipped", "reason": skipped[key]})
        else:
            records.append({**identity, **RECORD_DEFAULTS, "status": "pending",
                            "reason": "not converted in this run (--limit): a rerun converts it"})
    return pd.DataFrame(records, columns=RESULT_COLUMNS)
