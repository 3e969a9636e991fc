"""Fuzz: 200+ mutated files beside good series -> catalog -> conversion; nothing crashes, nothing is lost.

The corpus (``fuzz_corpus.py``) mutates the real Siemens series (JPEG 2000) and synthetic series
(explicit VR, JPEG 2000, implicit VR): truncations, targeted bit flips, missing and zero header values,
odd transfer syntaxes, non-CT objects, random bytes, exact and conflicting copies, the same export in
two folders, broken copies and re-exports that keep a good slice's SOP Instance UID, series UIDs that
are not UIDs. Each mutation kind must land in a quarantine row with its own reason category; every
good series must stay ok with exactly its good slices, under a valid UID key with a folder of its own.
The header/grouping checks run without Ray (fast); ``build_catalog`` on Ray and ``convert_archive`` over
the result are the slow tests.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from pydicom.uid import UID

from ctharmony.archive import quarantine as q
from ctharmony.infer.resume import series_dirname
from testkit import fuzz_corpus as FC
from testkit.real_cases import require_real_data

_CACHE: dict = {}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The archive: good series and 200+ mutated files, with what the catalog must make of each."""
    built = FC.build(tmp_path_factory.mktemp("fuzz") / "archive", require_real_data() / "siemens-abdomen-ct")
    assert len(built.mutants) + sum(len(g) - 1 for g in built.duplicates) >= 200
    return built


def _all_files(root: Path) -> list[str]:
    return sorted(os.path.join(folder, name) for folder, _, files in os.walk(root) for name in files)


def catalog_problems(df: pd.DataFrame, corpus) -> list[str]:
    """Every way ``df`` breaks the fuzz contract (empty when it holds)."""
    problems = []
    listed = [f for files in df["files"] for f in files]
    if sorted(listed) != _all_files(corpus.root):
        problems.append("the catalog's files are not exactly the archive's files")
    problems += [f"{path} in {n} rows" for path, n in Counter(listed).items() if n > 1]
    if not df["series_key"].is_unique:
        problems.append(f"series_key not unique: {df['series_key'][df['series_key'].duplicated()].tolist()}")
    row_of = {f: i for i, files in enumerate(df["files"]) for f in files}
    status, reason = df["status"].tolist(), df["reason"].tolist()
    ok_row = {}
    for name, slots in corpus.good.items():
        rows = {row_of.get(p) for slot in slots for p in slot} - {None}
        ok_rows = [i for i in rows if status[i] == "ok"]
        if len(ok_rows) != 1:
            problems.append(f"good series {name}: in {len(ok_rows)} ok rows ({[reason[i] for i in rows]})")
            continue
        ok_row[name] = ok_rows[0]
        files = set(df["files"][ok_rows[0]])
        hits = [len(slot & files) for slot in slots]
        if hits != [1] * len(slots) or len(files) != len(slots):
            problems.append(f"good series {name}: {len(files)} files for {len(slots)} good slices ({hits})")
    def fate(path: str) -> str:
        i = row_of.get(path)
        return "missing" if i is None else "ok" if status[i] == "ok" else reason[i]

    wrong: Counter = Counter()
    for path, (kind, category, words) in corpus.mutants.items():
        got = fate(path)
        if q.category(got) != category or words not in got:
            wrong[(kind, category, got[:120])] += 1
    problems += [f"{kind}: expected {cat}, got {got!r} ({n} files)" for (kind, cat, got), n in sorted(wrong.items())]
    for group in corpus.duplicates:
        fates = sorted(q.category(fate(p)) for p in group)
        if fates != sorted(["ok"] + [q.DUPLICATE] * (len(group) - 1)):
            problems.append(f"copies of one image {sorted(Path(p).name for p in group)}: {fates}")
    for path in corpus.conflicts:
        if q.category(fate(path)) != q.CONFLICTING_DUPLICATE:
            problems.append(f"conflicting copy {Path(path).name}: {fate(path)!r}")
    for path, categories in corpus.multi_problem.items():
        missing = [c for c in categories if f"{c}:" not in fate(path)]
        if missing:
            problems.append(f"{Path(path).name}: reason {fate(path)!r} does not name {missing}")
    problems += _key_problems(df, corpus, ok_row)
    bad = df[(df["status"] != "ok") & ~df["reason"].map(q.category).isin(q.CATEGORIES)]
    problems += [f"quarantine row without a known category: {r!r}" for r in bad["reason"]]
    return problems


def _key_problems(df: pd.DataFrame, corpus, ok_row: dict[str, int]) -> list[str]:
    """Ok series keyed by valid UIDs (surrogates named in a warning where the file's is invalid), one folder each."""
    problems = []
    ok = df[df["status"] == "ok"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the invalid values it is given
        problems += [f"ok series keyed by {k!r}: not a valid UID" for k in ok["series_key"] if not UID(k).is_valid]
    for name, uid in corpus.invalid_uids.items():
        if name not in ok_row:
            continue
        row = df.iloc[ok_row[name]]
        shown = repr(uid if len(uid) <= 70 else uid[:70] + "...")
        if row["series_uid"] != "" or f"SeriesInstanceUID {shown} is not a valid UID" not in row["warnings"]:
            problems.append(f"{name}: series_uid {row['series_uid']!r}, warnings {row['warnings']!r}")
    folders = Counter(series_dirname(key) for key in ok["series_key"])
    problems += [f"output folder {folder} shared by {n} series" for folder, n in folders.items() if n > 1]
    return problems


def test_every_mutant_gets_its_own_reason_from_the_header_reader(corpus):
    from ctharmony.archive.headers import read_header

    wrong = []
    for path, (kind, category, words) in corpus.mutants.items():
        error = read_header(path, salt="s")["error"]
        expected = "" if category in (q.INCONSISTENT_GEOMETRY, q.DUPLICATE, q.CONFLICTING_DUPLICATE) else category
        if q.category(error) != expected or (expected and words not in error):
            wrong.append(f"{kind} {Path(path).name}: {error!r}")
    assert not wrong, "\n".join(wrong)
    for slots in corpus.good.values():
        assert all(read_header(p, salt="s")["error"] == "" for slot in slots for p in slot)


@pytest.fixture(scope="module")
def grouped(corpus) -> pd.DataFrame:
    """The catalog's own steps (header chunk reader, series grouping, frame) run in this process."""
    from ctharmony.archive.catalog import catalog_frame, read_header_chunk
    from ctharmony.archive.protocols import load_rules
    from ctharmony.archive.scan import list_archive
    from ctharmony.archive.series import group_series

    listing = list_archive(corpus.root)
    table = read_header_chunk({"paths": [listing.files]}, salt="s", root=str(listing.root))
    rows = group_series(table.drop_columns(["node_id"]).to_pylist(), load_rules(None).classify)
    rows += [q.file_row(path, why) for path, why in listing.unsafe]
    return catalog_frame(rows)


def test_grouping_the_corpus_without_ray(grouped, corpus):
    problems = catalog_problems(grouped, corpus)
    assert not problems, "\n".join(problems)


def test_the_checker_sees_a_lost_slice_and_a_missed_mutant(grouped, corpus):
    broken = grouped.copy()
    ok_index = broken.index[broken["status"] == "ok"][0]
    broken.at[ok_index, "files"] = list(broken.at[ok_index, "files"])[1:]
    mutant = next(p for p, (kind, _, _) in corpus.mutants.items() if kind == "slope-0")
    row = next(i for i, files in enumerate(broken["files"]) if mutant in files)
    broken.at[row, "status"], broken.at[row, "reason"] = "ok", ""
    problems = catalog_problems(broken, corpus)
    assert "the catalog's files are not exactly the archive's files" in problems
    assert any(p.startswith("good series") for p in problems)
    assert any(p.startswith(f"slope-0: expected {q.INVALID_HEADER}, got 'ok'") for p in problems)


@pytest.fixture(scope="module")
def fuzz_catalog(corpus, tmp_path_factory):
    """build_catalog on the embedded Ray cluster (small chunks: several tasks share the corpus)."""
    import ray

    from ctharmony import cluster
    from ctharmony.archive.catalog import build_catalog

    if not ray.is_initialized():
        cluster.connect(num_cpus=4, quiet=True)
    out = tmp_path_factory.mktemp("fuzz-catalog") / "catalog.parquet"
    return out, build_catalog(corpus.root, out, chunk_size=32, progress=False)


@pytest.mark.slow
def test_catalog_on_ray_keeps_every_file_and_every_good_series(fuzz_catalog, corpus):
    out, df = fuzz_catalog
    problems = catalog_problems(pd.read_parquet(out), corpus)
    assert not problems, "\n".join(problems)
    ok = df[df["status"] == "ok"]
    assert len(ok) == len(corpus.good)
    assert (ok["spacing"].map(lambda s: s[0] > 0)).all()


@pytest.mark.slow
def test_conversion_records_every_ok_series_exactly_once(fuzz_catalog, tmp_path_factory):
    import torch

    from ctharmony.infer.pipeline import ConvertOptions, convert_archive
    from ctharmony.models import build
    from ctharmony.models.io import save_model

    catalog, df = fuzz_catalog
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("fuzz-convert")
    harmonizer = save_model(build("cpu-small"), root / "harmonizer")
    segmenter = save_model(build("liver-unet"), root / "segmenter")
    convert_archive(catalog, str(harmonizer), str(segmenter), root / "out",
                    options=ConvertOptions(batch_slices=4, progress_interval_s=0))
    results = pd.read_parquet(root / "out" / "results.parquet")
    ok = df[df["status"] == "ok"]
    assert sorted(results["series_key"]) == sorted(ok["series_key"])  # each ok series exactly once
    assert results["status"].isin(["done", "failed", "skipped"]).all()
    assert results["output_dir"].is_unique  # one folder per series (a/b and a_b included)
    unexplained = results[(results["status"] != "done") & (results["reason"] == "")]
    assert unexplained.empty, unexplained[["series_key", "status"]]
    done = results.set_index("series_key")["status"] == "done"
    assert done.all(), results.loc[results["status"] != "done", ["series_key", "status", "reason"]].to_string()
