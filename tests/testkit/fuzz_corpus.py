"""A fuzz corpus for the catalog: good series beside hundreds of mutated files, each with its expected fate.

Mutations are targeted (each changes something the catalog must detect) and come from the real
Siemens series (JPEG 2000) and from synthetic series (explicit VR, JPEG 2000, implicit VR). Most get a
fresh SOP Instance UID; broken copies and re-exports keep the slice's own (they must not cost the good
series a slice). Not a test module: ``test_archive_fuzz`` imports it as ``from testkit import fuzz_corpus``.

``build(root, real_dir)`` returns a :class:`Corpus`:

- ``good``: series name -> slots; each slot is the set of paths that may stand for one slice (one path,
  or an original and its copies); the ok series must hold exactly one path per slot;
- ``mutants``: path -> (kind, expected quarantine category, words the reason must contain);
- ``duplicates``: groups of copies of one image, byte-identical or re-exported with other header values
  (one kept in a series, the others ``duplicate instance``);
- ``conflicts``: paths that share a SOP Instance UID with different content (all ``conflicting duplicate``);
- ``multi_problem``: path of a series whose reason must name several problems, with their categories;
- ``invalid_uids``: good series whose SeriesInstanceUID is not a valid UID -> that value (surrogate key).
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import (
    BasicTextSRStorage,
    EncapsulatedPDFStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    MRImageStorage,
    RTStructureSetStorage,
    SecondaryCaptureImageStorage,
    SegmentationStorage,
    generate_uid,
)

from ctharmony.archive import quarantine as q
from testkit import dicom_mutations as M
from testkit.synthetic_ct import transcode_with_gdcm, write_ct_series

REAL_SOURCES = (0, 7, 13)  # indices of the real slices each file-level mutation is applied to
REAL_GOOD = 3  # real slices copied (twice, without UIDs) as good series
SIZE = 32  # synthetic series are SIZE x SIZE x 4 (small enough to convert fast)
NON_CT = {  # SOP class -> (Modality, words of the reason, keeps pixel data)
    SecondaryCaptureImageStorage: ("OT", "Secondary Capture Image Storage (a screenshot", True),
    MRImageStorage: ("MR", "MR Image Storage", True),
    SegmentationStorage: ("SEG", "DICOM SEG (Segmentation Storage)", False),
    RTStructureSetStorage: ("RTSTRUCT", "RT Structure Set Storage (contours)", False),
    BasicTextSRStorage: ("SR", "Basic Text SR Storage (a structured report)", False),
    EncapsulatedPDFStorage: ("DOC", "Encapsulated PDF Storage (an encapsulated document)", False),
}


@dataclasses.dataclass
class Corpus:
    root: Path
    good: dict[str, list[set[str]]] = dataclasses.field(default_factory=dict)
    mutants: dict[str, tuple[str, str, str]] = dataclasses.field(default_factory=dict)
    duplicates: list[set[str]] = dataclasses.field(default_factory=list)
    conflicts: list[str] = dataclasses.field(default_factory=list)
    multi_problem: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    invalid_uids: dict[str, str] = dataclasses.field(default_factory=dict)

    def expect(self, path: Path, kind: str, category: str, words: str = "") -> None:
        assert str(path) not in self.mutants, path
        self.mutants[str(path)] = (kind, category, words)


@dataclasses.dataclass
class Source:
    """A good file a mutation starts from."""

    tag: str
    path: Path
    series: str  # the good series it belongs to ('' for real sources: their copies are the good ones)


def _new_uid(path: Path) -> dict:
    uid = generate_uid(entropy_srcs=["fuzz", str(path)])
    return {"SOPInstanceUID": uid}


def _mutate(src: Source, dst: Path, meta: dict | None = None, **changes) -> Path:
    """A pydicom-level mutation with a fresh SOP Instance UID (never a conflicting copy of a good slice)."""
    uid = _new_uid(dst)
    return M.mutate(src.path, dst, meta={**(meta or {}), "MediaStorageSOPInstanceUID": uid["SOPInstanceUID"]},
                    **uid, **changes)


def _cut(src: Source, dst: Path, offset: int) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(src.path.read_bytes()[:offset])
    return dst


def _flip(src: Source, dst: Path, tag: tuple[int, int], index: int, bit: int) -> Path:
    data = bytearray(src.path.read_bytes())
    at, length = M.element_value_offset(src.path, tag)
    assert index < length, (src.path, tag)
    data[at + index] ^= 1 << bit
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(bytes(data))
    return dst


def _write_good(corpus: Corpus, name: str, paths: list[Path]) -> None:
    corpus.good[name] = [{str(p)} for p in paths]


def _good_series(corpus: Corpus, real: list[Path]) -> list[Source]:
    root = corpus.root / "good"
    sources = []
    for name, syntax in (("syn-explicit", ExplicitVRLittleEndian), ("syn-j2k", JPEG2000Lossless),
                         ("syn-implicit", ImplicitVRLittleEndian)):
        paths = write_ct_series(root / name, slices=4, rows=SIZE, columns=SIZE, transfer_syntax=syntax,
                                seed=len(sources))
        _write_good(corpus, name, paths)
        sources += [Source(f"{name}-{k}", p, name) for k, p in enumerate(paths)]
    for copy in ("real-a", "real-b"):  # the same export twice, without Study/Series UIDs
        folder = root / copy
        folder.mkdir(parents=True)
        paths = [Path(shutil.copy(p, folder / p.name)) for p in real[:REAL_GOOD]]
        _write_good(corpus, copy, paths)
    return sources


def _file_level(corpus: Corpus, sources: list[Source]) -> None:
    """Mutations each file shows by itself, applied to every source."""
    for src in sources:
        def out(kind: str, _src: Source = src) -> Path:
            return corpus.root / "mutants" / kind / f"{_src.tag}.dcm"

        data = src.path.read_bytes()
        pixel_at = data.index(b"\xe0\x7f\x10\x00")
        model_at, model_len = M.element_value_offset(src.path, (0x0008, 0x1090))
        date_at, _ = M.element_value_offset(src.path, (0x0008, 0x0020))
        cuts = {"cut-in-preamble": (64, q.NOT_DICOM, "DICM"),
                "cut-in-kept-value": (model_at + model_len // 2, q.TRUNCATED, "ends inside its header"),
                "cut-in-skipped-value": (date_at + 3, q.TRUNCATED, "ends inside its header"),
                "cut-at-pixel-element": (pixel_at, q.NO_PIXELS, "ends before any pixel data element"),
                "cut-in-pixel-start": (pixel_at + 40, q.TRUNCATED, ""),
                "cut-in-pixel-middle": ((pixel_at + len(data)) // 2, q.TRUNCATED, ""),
                "cut-last-byte": (len(data) - 1, q.TRUNCATED, "")}
        for kind, (offset, category, words) in cuts.items():
            corpus.expect(_cut(src, out(kind), offset), kind, category, words)
        rows = pydicom.dcmread(src.path, stop_before_pixels=True).Rows
        corpus.expect(M.flip_bit(src.path, out("flip-transfer-syntax"), b"\x02\x00\x10\x00UI", 9, 0, start=132),
                      "flip-transfer-syntax", q.UNDECODABLE, "unknown transfer syntax")
        corpus.expect(_flip(src, out("flip-rows-size"), (0x0028, 0x0010), 0, 0), "flip-rows-size", q.UNDECODABLE)
        power = int(math.log2(rows))
        corpus.expect(_flip(src, out("flip-rows-zero"), (0x0028, 0x0010), power // 8, power % 8), "flip-rows-zero",
                      q.INVALID_HEADER, "Rows is 0")
        corpus.expect(_flip(src, out("flip-modality"), (0x0008, 0x0060), 1, 0), "flip-modality", q.INVALID_HEADER,
                      "Modality is CU in a CT Image Storage file")
        in_dataset = bool(pydicom.dcmread(src.path, stop_before_pixels=True).get("SOPClassUID"))
        corpus.expect(_flip(src, out("flip-sop-class"), (0x0008, 0x0016) if in_dataset else (0x0002, 0x0002), 24, 0),
                      "flip-sop-class", q.NOT_CT, "Ultrasound Multi-frame Image Storage")
        corpus.expect(M.set_transfer_syntax(src.path, out("unknown-transfer-syntax"), "1.2.3.4.5.6"),
                      "unknown-transfer-syntax", q.UNDECODABLE, "unknown transfer syntax '1.2.3.4.5.6'")
        corpus.expect(M.set_transfer_syntax(src.path, out("mpeg2-transfer-syntax"), "1.2.840.10008.1.2.4.100"),
                      "mpeg2-transfer-syntax", q.UNDECODABLE, "MPEG2")
        edits = {
            "rows-0": ({"Rows": 0}, q.INVALID_HEADER, "Rows is 0"),
            "columns-0": ({"Columns": 0}, q.INVALID_HEADER, "Columns is 0"),
            "no-rows": ({"Rows": None}, q.INVALID_HEADER, "Rows missing"),
            "no-bits-allocated": ({"BitsAllocated": None}, q.INVALID_HEADER, "BitsAllocated missing"),
            "no-pixel-spacing": ({"PixelSpacing": None}, q.INVALID_HEADER, "PixelSpacing missing"),
            "pixel-spacing-0": ({"PixelSpacing": [0, 0]}, q.INVALID_HEADER, "PixelSpacing is 0\\0"),
            "slope-0": ({"RescaleSlope": 0}, q.INVALID_HEADER, "RescaleSlope is 0"),
            "samples-3": ({"SamplesPerPixel": 3}, q.INVALID_HEADER, "SamplesPerPixel is 3"),
            "position-nan": ({"ImagePositionPatient": [0, "nan", 0]}, q.INVALID_HEADER, "ImagePositionPatient"),
            "no-sop-class": ({"SOPClassUID": None, "_meta": {"MediaStorageSOPClassUID": None}}, q.INVALID_HEADER,
                             "SOP Class UID missing"),
            "multiframe": ({"NumberOfFrames": 2}, q.MULTIFRAME, "2 frames"),
            "localizer": ({"ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"]}, q.LOCALIZER, "LOCALIZER"),
        }
        for kind, (changes, category, words) in edits.items():
            changes = dict(changes)
            meta = changes.pop("_meta", None)
            corpus.expect(_mutate(src, out(kind), meta=meta, **changes), kind, category, words)
        for sop_class, (modality, words, pixels) in NON_CT.items():
            kind = f"non-ct-{modality.lower()}"
            gone = {} if pixels else {"PixelData": None, "Rows": None, "Columns": None, "PixelSpacing": None}
            corpus.expect(_mutate(src, out(kind), meta={"MediaStorageSOPClassUID": sop_class}, SOPClassUID=sop_class,
                                  Modality=modality, **gone), kind, q.NOT_CT, words)


def _not_dicom(corpus: Corpus) -> None:
    rng = np.random.default_rng(11)
    folder = corpus.root / "mutants" / "not-dicom"
    folder.mkdir(parents=True)
    for k, size in enumerate((1, 7, 128, 131, 132, 500, 2048, 4096, 10000, 65536)):
        path = folder / f"random-{k}.dcm"
        path.write_bytes(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
        corpus.expect(path, "random-bytes", q.NOT_DICOM)
    for k in range(4):
        path = folder / f"empty-{k}.dcm"
        path.write_bytes(b"")
        corpus.expect(path, "empty", q.NOT_DICOM, "empty file")


def _series_level(corpus: Corpus, sources: list[Source]) -> None:
    """Mutations only the series grouping can see: copies, conflicts, slices without geometry."""
    export = corpus.root / "export-copy" / "syn-j2k"  # the same export (with UIDs) stored twice
    shutil.copytree(corpus.root / "good" / "syn-j2k", export)
    for slot in corpus.good["syn-j2k"]:
        slot.add(str(export / Path(next(iter(slot))).name))
        corpus.duplicates.append(set(slot))
    for name in ("syn-explicit", "syn-j2k", "syn-implicit"):
        src = next(s for s in sources if s.series == name)
        for keyword in ("ImagePositionPatient", "ImageOrientationPatient"):
            kind = f"no-{keyword}"
            path = _mutate(src, src.path.parent / f"{kind}.dcm", **{keyword: None})
            corpus.expect(path, kind, q.INCONSISTENT_GEOMETRY, "without ImagePositionPatient")
    folder = corpus.root / "good" / "syn-dup"
    paths = write_ct_series(folder, slices=6, rows=SIZE, columns=SIZE, seed=7)
    corpus.good["syn-dup"] = [{str(p)} for p in paths[4:]]
    same_folder = folder / f"{paths[0].stem}~copy.dcm"
    other_folder = corpus.root / "elsewhere" / paths[1].name
    other_folder.parent.mkdir(parents=True)
    for original, copy in ((paths[0], same_folder), (paths[1], other_folder)):
        shutil.copy(original, copy)
        group = {str(original), str(copy)}
        corpus.duplicates.append(group)
        corpus.good["syn-dup"].append(group)
    pixel_copy = M.mutate(paths[2], corpus.root / "elsewhere" / "changed-pixels.dcm",
                          PixelData=(np.frombuffer(pydicom.dcmread(paths[2]).PixelData, np.uint16) + 1).tobytes())
    ds = pydicom.dcmread(paths[3])
    moved = M.mutate(paths[3], corpus.root / "elsewhere" / "moved.dcm",
                     ImagePositionPatient=[float(v) + (100.0 if i == 2 else 0.0)
                                           for i, v in enumerate(ds.ImagePositionPatient)])
    corpus.conflicts += [str(paths[2]), str(pixel_copy), str(paths[3]), str(moved)]
    [lonely] = write_ct_series(corpus.root / "lonely", slices=1, rows=SIZE, columns=SIZE,
                               tags={"ImagePositionPatient": None})
    corpus.multi_problem[str(lonely)] = (q.INCONSISTENT_GEOMETRY, q.LOCALIZER)
    many = _mutate(sources[0], corpus.root / "mutants" / "many-problems" / "a.dcm", Rows=0, PixelSpacing=[0, 0],
                   RescaleSlope=0)
    corpus.expect(many, "many-problems", q.INVALID_HEADER, "Rows is 0; PixelSpacing is 0\\0")
    corpus.multi_problem[str(many)] = (q.INVALID_HEADER,)


def _broken_copies(corpus: Corpus) -> None:
    """Broken copies of good slices that keep their SOP Instance UID, beside them: each quarantined for itself."""
    broken = {  # kind -> (edit of the copy, expected category, words of the reason)
        "copy-no-pixel-spacing": ({"PixelSpacing": None}, q.INVALID_HEADER, "PixelSpacing missing"),
        "copy-slope-0": ({"RescaleSlope": 0}, q.INVALID_HEADER, "RescaleSlope is 0"),
        "copy-modality-mr": ({"Modality": "MR"}, q.INVALID_HEADER, "Modality is MR in a CT Image Storage file"),
        "copy-mr-image": ({"SOPClassUID": MRImageStorage, "Modality": "MR",
                           "_meta": {"MediaStorageSOPClassUID": MRImageStorage}}, q.NOT_CT, "MR Image Storage"),
        "copy-localizer": ({"ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"]}, q.LOCALIZER, "LOCALIZER"),
        "copy-no-position": ({"ImagePositionPatient": None}, q.INCONSISTENT_GEOMETRY, "without ImagePositionPatient"),
    }
    for name in ("syn-implicit", "real-b"):  # a series with its UID, and one keyed by its folder
        slices = [Path(next(iter(slot))) for slot in corpus.good[name]]
        for k, (kind, (changes, category, words)) in enumerate(broken.items()):
            src = slices[k % len(slices)]
            changes = dict(changes)
            meta = changes.pop("_meta", None)
            corpus.expect(M.mutate(src, src.parent / f"{kind}.dcm", meta=meta, **changes), kind, category, words)
        src = Source(f"{name}-flip", slices[-1], name)
        power = int(math.log2(pydicom.dcmread(src.path, stop_before_pixels=True).Rows))
        flipped = _flip(src, src.path.parent / "copy-flip-rows.dcm", (0x0028, 0x0010), power // 8, power % 8)
        corpus.expect(flipped, "copy-flip-rows", q.INVALID_HEADER, "Rows is 0")
        data = slices[0].read_bytes()
        cut = _cut(Source(f"{name}-cut", slices[0], name), slices[0].parent / "copy-cut.dcm",
                   (data.index(b"\xe0\x7f\x10\x00") + len(data)) // 2)
        corpus.expect(cut, "copy-cut-in-pixels", q.TRUNCATED)


def _reexports(corpus: Corpus) -> None:
    """Copies of good slices with the same pixels and other header values: duplicates, never conflicts."""
    def add(name: str, index: int, copy: Path) -> None:
        slot = corpus.good[name][index]
        slot.add(str(copy))
        corpus.duplicates.append(set(slot))

    anonymised = {"PatientName": "OTHER^PATIENT", "PatientID": "OTHER-0002"}
    explicit = Path(next(iter(corpus.good["syn-explicit"][1])))
    add("syn-explicit", 1, M.mutate(explicit, corpus.root / "reexport" / "syn-explicit" / explicit.name, **anonymised))
    real = Path(next(iter(corpus.good["real-b"][1])))  # keyed by its folder: the re-export lands beside it
    add("real-b", 1, M.mutate(real, real.parent / "reexport-anonymised.dcm", **anonymised))
    explicit = Path(next(iter(corpus.good["syn-explicit"][2])))
    transcoded = corpus.root / "reexport" / "syn-explicit" / f"{explicit.stem}-jpeg-lossless.dcm"
    shutil.copy(explicit, transcoded)
    transcode_with_gdcm(transcoded, "JPEGLosslessProcess14_1")  # other bytes, the same pixels
    add("syn-explicit", 2, transcoded)


INVALID_SERIES_UIDS = ("../../../../etc/passwd", "9" * 200, "1.2.03.4", "a/b", "a_b")


def _invalid_uids(corpus: Corpus) -> None:
    """Good series whose SeriesInstanceUID is not a UID; ``a/b`` and ``a_b`` share folder, study and frame."""
    folder = corpus.root / "invalid-uids"
    shared = {"study_uid": generate_uid(entropy_srcs=["fuzz-study"]), "frame_uid": generate_uid(entropy_srcs=["fuzz"])}
    for k, uid in enumerate(INVALID_SERIES_UIDS):
        name = f"invalid-uid-{k}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about the invalid value it writes
            paths = write_ct_series(folder / name, slices=3, rows=SIZE, columns=SIZE, series_uid=uid, seed=20 + k,
                                    **shared)
        if uid == "a_b":  # moved beside a/b's slices: only the (invalid) series UID tells the two apart
            paths = [p.rename(folder / f"invalid-uid-{k - 1}" / f"a_b-{p.name}") for p in paths]
            (folder / name).rmdir()
        _write_good(corpus, name, paths)
        corpus.invalid_uids[name] = uid


def build(root: Path, real_dir: Path) -> Corpus:
    """Write the corpus under ``root`` (an empty folder) and return what the catalog must make of it."""
    corpus = Corpus(root)
    real = sorted(real_dir.iterdir())
    sources = _good_series(corpus, real)
    file_sources = [s for s in sources if s.tag.endswith("-0")]
    file_sources += [Source(f"real-{k:02d}", real[k], "") for k in REAL_SOURCES]
    _file_level(corpus, file_sources)
    _not_dicom(corpus)
    _series_level(corpus, sources)
    _broken_copies(corpus)
    _reexports(corpus)
    _invalid_uids(corpus)
    return corpus
