"""The archive catalog: a Ray Data pipeline over header-only reads, one Parquet row per series.

Pipeline: list the archive on the driver (cheap, see ``scan``) -> chunks of a few hundred paths ->
``ray.data.from_items`` with one block per chunk (so every CPU of every node gets work) ->
``map_batches(read_header_chunk)`` reads headers (never pixel data) -> the driver streams the
records back with a progress display, groups them into series (``series.group_series``),
classifies protocols (``protocols``) and writes the Parquet catalog. Every listed file ends in exactly
one row: a series' file list or a quarantine row. ``read_catalog`` is the one reader of that file
(typed rows: ``catalog_table``).

Example::

    cluster.connect()  # the caller joins Ray; the archive layer never starts it
    df = build_catalog(Path("archive"), Path("catalog.parquet"))
    print(summarize(df))
    rows = read_catalog("catalog.parquet").series(status="ok")
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ctharmony.archive import quarantine as q
from ctharmony.archive.catalog_table import REQUIRED_COLUMNS, Catalog, CatalogError, SeriesRow
from ctharmony.archive.headers import read_header
from ctharmony.archive.progress_bar import Progress
from ctharmony.archive.protocols import load_rules
from ctharmony.archive.pseudonym import pseudonym_salt
from ctharmony.archive.scan import chunks, list_archive
from ctharmony.archive.series import group_series

__all__ = ["Catalog", "CatalogError", "SeriesRow", "build_catalog", "read_catalog", "summarize", "write_catalog"]
log = logging.getLogger(__name__)
CHUNK_MIN, CHUNK_MAX = 64, 512  # files per header-read task when chosen automatically

RECORD_SCHEMA = pa.schema(
    [
        ("path", pa.string()), ("bytes", pa.int64()), ("error", pa.string()), ("transfer_syntax", pa.string()),
        ("sop_class_uid", pa.string()), ("sop_uid", pa.string()), ("modality", pa.string()),
        ("patient_key", pa.string()), ("study_uid", pa.string()), ("series_uid", pa.string()),
        ("frame_of_reference_uid", pa.string()), ("site", pa.string()), ("manufacturer", pa.string()),
        ("model", pa.string()), ("kernel", pa.string()), ("kvp", pa.float64()), ("image_type", pa.string()),
        ("series_description", pa.string()), ("protocol_name", pa.string()), ("recon_info", pa.string()),
        ("rows", pa.int64()), ("columns", pa.int64()),
        ("bits", pa.int64()), ("samples", pa.int64()), ("position", pa.list_(pa.float64())),
        ("orientation", pa.list_(pa.float64())), ("pixel_spacing", pa.list_(pa.float64())),
        ("slice_thickness", pa.float64()), ("frames", pa.int64()), ("gantry_tilt", pa.float64()),
        ("instance", pa.int64()), ("node_id", pa.string()),
    ]
)
_RECORD_DEFAULTS: dict[str, Any] = {
    f.name: ([] if pa.types.is_list(f.type) else 0 if pa.types.is_integer(f.type)
             else np.nan if pa.types.is_floating(f.type) else "")
    for f in RECORD_SCHEMA
}
CATALOG_SCHEMA = pa.schema(
    [
        (name, pa.list_(pa.float64()) if name in ("spacing", "slice_steps_mm")
         else pa.list_(pa.string()) if name == "files"
         else pa.int64() if name in ("rows", "columns", "slices", "bytes")
         else pa.float64() if name in ("kvp", "slice_thickness", "tilt_degrees", "largest_gap_mm") else pa.string())
        for name in q.CATALOG_COLUMNS
    ]
)


def read_header_chunk(batch: dict[str, Any], *, salt: str, root: str) -> pa.Table:
    """Ray Data batch function: header records of every path in the batch's chunks (one row per file)."""
    import ray

    node_id = ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
    records = []
    for paths in batch["paths"]:
        for path in paths:
            rel = os.path.relpath(path, root).split(os.sep, 1)
            record = read_header(path, salt=salt, site=rel[0] if len(rel) > 1 else "")
            records.append({**_RECORD_DEFAULTS, **record, "node_id": node_id})
    return pa.Table.from_pylist(records, schema=RECORD_SCHEMA)


def auto_chunk_size(files: int, cpus: float) -> int:
    """Files per task: about four tasks per CPU (load balance), within [CHUNK_MIN, CHUNK_MAX] (overhead)."""
    return int(min(CHUNK_MAX, max(CHUNK_MIN, -(-files // max(1, int(4 * cpus))))))


def read_headers(
    files: Sequence[str], *, root: str, salt: str, chunk_size: int | None = None, progress: bool = True
) -> pa.Table:
    """Read the headers of ``files`` on the Ray cluster (connect first); returns one record per file."""
    import ray

    if chunk_size is None:
        chunk_size = auto_chunk_size(len(files), ray.cluster_resources().get("CPU", 1.0))
    parts = chunks(list(files), chunk_size)
    if not parts:
        return RECORD_SCHEMA.empty_table()
    ctx = ray.data.DataContext.get_current()
    bars = ctx.enable_progress_bars
    ctx.enable_progress_bars = False  # our own display below counts files, not blocks
    try:
        ds = ray.data.from_items([{"paths": p} for p in parts], override_num_blocks=len(parts))
        ds = ds.map_batches(read_header_chunk, batch_size=1, batch_format="numpy",
                            fn_kwargs={"salt": salt, "root": root}, num_cpus=1)
        tables = []
        with Progress(len(files), "headers", enabled=progress) as bar:
            for table in ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=4):
                tables.append(table)
                bar.advance(table.num_rows)
    finally:
        ctx.enable_progress_bars = bars
    return pa.concat_tables(tables).cast(RECORD_SCHEMA)


def catalog_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The catalog rows as a DataFrame in the contract's column order (ok rows first)."""
    table = pa.Table.from_pylist([{c: r.get(c, q.CATALOG_DEFAULTS[c]) for c in q.CATALOG_COLUMNS} for r in rows],
                                 schema=CATALOG_SCHEMA)
    df = table.to_pandas()
    return df.sort_values(["status", "site", "series_key"], ignore_index=True)


def build_catalog(
    archive: Path | str,
    out: Path | str,
    *,
    rules: Path | str | None = None,
    chunk_size: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Catalog ``archive`` on the Ray cluster in force (header-only) and write ``out`` (Parquet); returns the catalog.

    The caller connects first (:func:`ctharmony.cluster.connect`): the archive layer never starts Ray itself.

    Args:
        archive: folder of DICOM files (any layout; links are not followed).
        out: the Parquet file to write.
        rules: a YAML rules file tried before the default protocol rules.
        chunk_size: files per header-read task (default: ``auto_chunk_size``).
        progress: show a progress display on stderr.

    ``df.attrs`` holds ``node_ids`` (the Ray nodes that read headers), ``files`` and ``seconds``.
    """
    import ray

    started = time.perf_counter()
    classifier = load_rules(rules)  # fail on a bad rules file before any work
    if not ray.is_initialized():
        raise RuntimeError("build_catalog reads headers on Ray: connect first (ctharmony.cluster.connect)")
    listing = list_archive(archive)
    headers = read_headers(listing.files, root=str(listing.root), salt=pseudonym_salt(),
                           chunk_size=chunk_size, progress=progress)
    node_ids = sorted(set(headers.column("node_id").to_pylist())) if headers.num_rows else []
    records = headers.drop_columns(["node_id"]).to_pylist()
    rows = group_series(records, classifier.classify)
    rows += [q.file_row(path, why) for path, why in listing.unsafe]
    df = catalog_frame(rows)
    write_catalog(df, out)
    df.attrs.update(node_ids=node_ids, files=len(listing.files) + len(listing.unsafe),
                    seconds=time.perf_counter() - started)
    log.info("catalog written to %s\n%s", out, summarize(df))
    return df


def write_catalog(df: pd.DataFrame, out: Path | str) -> Path:
    """Write the catalog atomically (a temporary file renamed into place); series keys must be unique."""
    dupes = df["series_key"][df["series_key"].duplicated()].tolist()
    if dupes:
        raise RuntimeError(f"catalog for {out}: series_key not unique ({dupes[:3]}): this is a bug, please report")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        df.to_parquet(tmp, index=False, schema=CATALOG_SCHEMA)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def read_catalog(path: Path | str) -> Catalog:
    """Read a catalog Parquet file: the one reader every stage uses; raises :class:`CatalogError`.

    Columns are checked and cast to the contract's types (``CATALOG_SCHEMA``); the identity columns
    (``REQUIRED_COLUMNS``) must be there, any other contract column a file lacks gets its default.

    Example::

        catalog = read_catalog("catalog.parquet")
        [row.series_key for row in catalog.series(protocols=("M80",))]
    """
    import pyarrow.parquet as pq

    path = Path(path).expanduser()
    if not path.is_file():
        raise CatalogError(f"{path}: no such catalog file (build one with `ctharmony catalog`)")
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as err:
        raise CatalogError(f"{path}: not a readable Parquet catalog ({err})") from err
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise CatalogError(f"{path}: missing column(s) {', '.join(missing)}; rebuild it with `ctharmony catalog`")
    columns, fields = [], []
    for field in CATALOG_SCHEMA:
        if field.name in table.column_names:
            column = table.column(field.name)
            try:
                column = column.cast(field.type)
            except (pa.ArrowException, TypeError, ValueError) as err:
                raise CatalogError(f"{path}: column {field.name!r} holds {column.type}, "
                                   f"the catalog needs {field.type} ({err})") from err
        else:
            default = q.CATALOG_DEFAULTS[field.name]
            column = pa.array([default] * table.num_rows, type=field.type)
        columns.append(column)
        fields.append(field)
    extra = [name for name in table.column_names if name not in CATALOG_SCHEMA.names]
    for name in extra:  # kept after the contract's columns, never interpreted
        columns.append(table.column(name))
        fields.append(table.schema.field(name))
    frame = pa.Table.from_arrays(columns, schema=pa.schema(fields)).to_pandas()
    return Catalog(frame, path)


def summarize(df: pd.DataFrame) -> str:
    """A short human summary: series ok / quarantined by reason, sites, protocols."""
    ok = df[df["status"] == "ok"]
    bad = df[df["status"] != "ok"]
    lines = [
        f"{len(ok)} series ok ({int(ok['slices'].sum())} files), "
        f"{len(bad)} quarantine rows ({sum(len(f) for f in bad['files'])} files)"
    ]
    if len(bad):
        counts = bad["reason"].map(q.category).value_counts()
        lines.append("quarantined: " + ", ".join(f"{reason} {n}" for reason, n in counts.items()))
    if len(ok):
        sites = ok["site"].replace("", "(none)").value_counts()
        lines.append("sites: " + ", ".join(f"{s} {n}" for s, n in sites.sort_index().items()))
        protocols = ok["protocol"].value_counts()
        lines.append("protocols: " + ", ".join(f"{p} {n}" for p, n in protocols.sort_index().items()))
        warned = ok[ok["warnings"] != ""]
        if len(warned):
            lines.append(f"series with warnings (gap, variable spacing, tilt...): {len(warned)}")
    return "\n".join(lines)
