"""A catalog of a small archive without Ray: the same header records and grouping as ``build_catalog``."""

from __future__ import annotations

import os
from pathlib import Path

from ctharmony.archive.catalog import _RECORD_DEFAULTS, catalog_frame, write_catalog
from ctharmony.archive.headers import read_header
from ctharmony.archive.protocols import load_rules
from ctharmony.archive.series import group_series


def local_catalog(archive: Path, out: Path, salt: str = "local-catalog-test-salt") -> Path:
    """Catalog ``archive`` (site = first folder under it) in this process and write ``out``."""
    records = []
    for path in sorted(p for p in Path(archive).rglob("*") if p.is_file()):
        rel = os.path.relpath(path, archive).split(os.sep, 1)
        site = rel[0] if len(rel) > 1 else ""
        records.append({**_RECORD_DEFAULTS, **read_header(str(path), salt=salt, site=site)})
    records = [{k: v for k, v in r.items() if k != "node_id"} for r in records]
    return write_catalog(catalog_frame(group_series(records, load_rules(None).classify)), out)
