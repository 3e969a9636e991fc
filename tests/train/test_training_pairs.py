"""Training pairs in physical space: resampling onto M80's planes, checked against SimpleITK and the phantom's truth."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from ctharmony.archive.onto_planes import normal_weights, resample_onto
from ctharmony.archive.volume import Volume
from ctharmony.phantom import physics
from ctharmony.phantom.dicom_writer import deterministic_uid, protocol_tags, write_ct_series
from ctharmony.scanmodel.anatomy import build_anatomy, patient_grid, sample_patient
from ctharmony.scanmodel.grid import Grid
from ctharmony.scanmodel.sites import make_sites
from ctharmony.train.data import PairedPatchSampler, PairedStudy, load_study, read_volume
from ctharmony.train.pair_report import format_report, plan_pairs

SIZE = 64


def _volume(seed: int, shape=(5, 24, 24), **geometry) -> Volume:
    return Volume(np.random.default_rng(seed).normal(0, 100, shape).astype(np.float32), **geometry)


def test_identity_resampling_is_exact() -> None:
    uneven = _volume(0, spacing=(2.0, 0.7, 0.7), positions=[[0, 0, z] for z in (0.0, 1.0, 3.5, 4.0, 9.0)])
    for volume in (_volume(1, spacing=(3.0, 0.8, 0.9), origin=(-10.0, 5.0, 2.0)), uneven):
        out = resample_onto(volume, volume)
        assert out.coverage.all() and np.array_equal(out.hu, volume.hu)
        assert np.array_equal(out.weights, np.eye(volume.shape[0]))
    # the interpolating path on a whole-pixel shift is exact too
    source = _volume(2, spacing=(1.0, 1.0, 1.0))
    target = dataclasses.replace(source, positions=source.positions + [2.0, 1.0, 0.0])
    out = resample_onto(source, target)
    assert np.array_equal(out.hu[:, :-1, :-2], source.hu[:, 1:, 2:])
    assert out.coverage[:, :-1, :-2].all() and not out.coverage[:, -1].any()


def test_in_plane_resampling_matches_simpleitk() -> None:
    import SimpleITK as sitk

    source = _volume(3, (3, 30, 30), spacing=(2.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0))
    target = Volume(np.zeros((3, 25, 20), np.float32), spacing=(2.0, 0.83, 1.17), origin=(3.3, -2.1, 0.0))
    out = resample_onto(source, target)
    reference = sitk.GetArrayFromImage(sitk.Resample(source.to_sitk(), target.to_sitk(), sitk.Transform(),
                                                     sitk.sitkLinear, -5000.0))
    inside = reference > -4000  # ITK also takes the outer half pixel (clamped): ours is within
    assert out.coverage.sum() > 0.5 * out.coverage.size and not (out.coverage & ~inside).any()
    np.testing.assert_allclose(out.hu[out.coverage], reference[out.coverage], atol=1e-3)


def test_thin_to_thick_averages_inside_the_slab_and_thick_to_thin_interpolates() -> None:
    thin, thick = np.arange(0.0, 9.0), np.array([1.0, 4.0, 7.0])
    assert np.allclose(normal_weights(thin, thick, 3.0, 1.0)[1], [0, 0, 0, 1 / 3, 1 / 3, 1 / 3, 0, 0, 0])
    assert np.allclose(normal_weights(thin, np.array([4.0]), 2.0, 1.0)[0, 3:6], [0.25, 0.5, 0.25])  # edges: half
    w = normal_weights(thick, thin, 1.0, 3.0)
    assert np.allclose(w[2], [2 / 3, 1 / 3, 0]) and np.allclose(w[4], [0, 1, 0])
    assert not w[0].any() and not w[8].any()  # beyond the thick stack's planes
    gapped = normal_weights(np.array([0.0, 1.0, 5.0, 6.0]), np.array([0.5, 1.5, 3.0]), 1.0, 1.0)
    assert np.allclose(gapped[0], [0.5, 0.5, 0, 0]) and not gapped[1:].any()  # no interpolation across a gap


# --- one phantom study: thin (1 mm) mono, thick (3 mm) FBP / IR, another field of view, shifted in z -----------

def _write(out: Path, name: str, hu: np.ndarray, grid: Grid, study: str, frame: str,
           shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> list[str]:
    tags = {**protocol_tags(name, "Br40"), "PatientID": f"PAIRS-{study}", "PatientName": f"PAIRS-{study}",
            "StudyInstanceUID": deterministic_uid("pairs", study),
            "FrameOfReferenceUID": deterministic_uid("pairs", frame),
            "SeriesInstanceUID": deterministic_uid("pairs", study, name), "SliceThickness": f"{grid.spacing[0]:g}"}
    origin = tuple(float(o) + s for o, s in zip(grid.origin, shift_mm, strict=True))
    paths = write_ct_series(hu, out / study / name, tags=tags, origin=origin, spacing=grid.spacing,
                            sop_uid_seed=f"{study}|{name}")
    return [str(p) for p in paths]


@pytest.fixture(scope="module")
def phantom_study(tmp_path_factory):
    """Thin M80 (1 mm slices, 1.5 mm pixels over the liver), thick FBP / IR (3 mm slices, 1.275 mm pixels: a
    smaller, off-centre field of view; z range shifted by 7.5 mm), their noise-free M80 truths, and two
    studies whose inputs must be refused (no overlap; headers shifted by 12 mm, another frame of reference)."""
    out = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(5)
    while (params := sample_patient(rng))["age_group"] != "adult":
        pass
    site = make_sites(1, seed=0)[0]
    body = patient_grid(params, site, 18, SIZE, 0.0)
    liver = np.argwhere(build_anatomy(params, body).liver_mask).mean(axis=0)  # clinical pixels: liver and its side
    centre = [body.origin[a] + liver[2 - a] * body.spacing[2 - a] + (-30.0, 20.0)[a] for a in (0, 1)]
    thin = Grid(shape=(18, SIZE, SIZE), spacing=(1.0, 1.5, 1.5),
                origin=(*(round(c - (SIZE - 1) / 2 * 1.5, 4) for c in centre), 0.0))
    thick = Grid(shape=(6, SIZE, SIZE), spacing=(3.0, 1.275, 1.275),
                 origin=(round(thin.origin[0] + 9.0, 4), round(thin.origin[1] + 5.0, 4), 7.5))
    far = dataclasses.replace(thick, origin=(*thick.origin[:2], 60.0))
    images = {}
    for key, grid in (("thin", thin), ("thick", thick), ("far", far)):
        images[key] = physics.render(build_anatomy(params, grid), site, np.random.default_rng([5, len(images)]),
                                     with_clean=True)
    thin_m80 = images["thin"]["M80"]
    records = []

    def record(study: str, files: dict[str, list[str]]) -> dict:
        names = sorted(files)
        return {"study_uid": deterministic_uid("pairs", study), "patient_key": f"pk-{study}", "protocols": names,
                "files": [files[p] for p in names]}

    good = {"M80": _write(out, "M80", thin_m80, thin, "good", "f1"),
            **{p: _write(out, p, images["thick"][p], thick, "good", "f1") for p in ("FBP", "IR")}}
    records.append(record("good", good))
    records.append(record("apart", {"M80": _write(out, "M80", thin_m80, thin, "apart", "f2"),
                                    "FBP": _write(out, "FBP", images["far"]["FBP"], far, "apart", "f2")}))
    shifted = {"M80": _write(out, "M80", thin_m80, thin, "shifted", "f3"),  # headers lie by 12 mm in x
               "FBP": _write(out, "FBP", images["thick"]["FBP"], thick, "shifted", "f3", (12.0, 0.0, 0.0)),
               "IR": _write(out, "IR", images["thick"]["IR"], thick, "shifted", "f4")}  # another frame
    records.append(record("shifted", shifted))
    return {"records": records, "good": good, "truth_thin": images["thin"]["clean_M80"],
            "truth_thick": images["thick"]["clean_M80"]}


def _truth_twin(files: list[str], truth: np.ndarray) -> Volume:
    """A written series' geometry (read back) with the phantom's noise-free M80 image in its voxels."""
    volume = read_volume(files)
    return volume.with_hu(truth.astype(np.float32))  # axial phantom series: the canonical layout as written


def test_thick_series_pair_with_thin_m80_within_2_hu_of_the_truth(phantom_study) -> None:
    good = phantom_study["good"]
    study = load_study(phantom_study["records"][0])
    assert [o.used for o in study.outcomes] == [True, True] and set(study) == {"FBP", "IR", "M80"}
    cover = study.coverage["FBP"]
    assert 0.3 < cover.mean() < 0.9  # z shifted, field of view smaller: some of M80 only
    assert np.array_equal(cover, study.coverage["IR"])
    # the noise-free M80 on the thick grid, through the same code path, against the thin truth
    thin_truth = _truth_twin(good["M80"], phantom_study["truth_thin"])
    thick_truth = _truth_twin(good["FBP"], phantom_study["truth_thick"])
    resampled = resample_onto(thick_truth, thin_truth)
    assert np.array_equal(resampled.coverage, cover)
    error = np.abs(resampled.hu - thin_truth.hu)[cover]
    assert error.mean() <= 2.0
    twin = PairedStudy({"M80": thin_truth.hu, "FBP": resampled.hu, "IR": resampled.hu},
                       {"FBP": cover, "IR": cover})
    x_true, y_true, names = PairedPatchSampler([twin], 32, "M80", np.random.default_rng(0)).sample(64)
    x, y, names_noisy = PairedPatchSampler([study], 32, "M80", np.random.default_rng(0)).sample(64)
    assert names == names_noisy and {"FBP", "IR", "M80"} <= set(names)  # the same draws as the noisy pairs
    per_patch = np.abs(x_true - y_true).mean(axis=(1, 2, 3))
    assert per_patch.max() <= 2.0, per_patch.max()
    # and thin -> thick: the thin truth averaged over each 3 mm slab against the thick truth
    back = resample_onto(thin_truth, thick_truth)
    thick_error = np.abs(back.hu - thick_truth.hu)[back.coverage]
    assert back.coverage.any() and thick_error.mean() <= 2.0
    print(f"|dHU| thick->thin mean {error.mean():.2f} (worst patch {per_patch.max():.2f}), "
          f"thin->thick mean {thick_error.mean():.2f}")


def test_pairs_without_overlap_or_misregistered_are_refused_and_counted(phantom_study) -> None:
    plan = plan_pairs(phantom_study["records"], "M80")
    status = {(r["patient_key"], r["protocol"]): (r["status"], r["reason"]) for r in plan.rows}
    assert status[("pk-good", "FBP")][0] == status[("pk-good", "IR")][0] == "used"
    assert status[("pk-apart", "FBP")][0] == "refused" and "no overlap" in status[("pk-apart", "FBP")][1]
    assert "misregistered" in status[("pk-shifted", "FBP")][1]
    assert "FrameOfReferenceUID" in status[("pk-shifted", "IR")][1]
    assert [r["patient_key"] for r in plan.records] == ["pk-good"]
    assert {p: dict(c) for p, c in plan.counts().items()} == {"FBP": {"used": 1, "refused": 2},
                                                               "IR": {"used": 1, "refused": 1}}
    text = format_report(plan)
    assert "FBP  used    1  refused    2" in text and "refused: patient pk-apart" in text
    assert deterministic_uid("pairs", "apart") not in text  # the study by its hash, not its UID


def test_same_grid_studies_give_exactly_the_pairs_they_gave_before(tmp_path) -> None:
    from ctharmony.phantom import generate_archive

    generate_archive(tmp_path, patients=1, slices=3, size=48, sites=1, seed=2)
    folder = next((tmp_path / "dicom").glob("*/*"))
    files = {p.name: sorted(str(f) for f in p.iterdir()) for p in sorted(folder.iterdir())}
    record = {"study_uid": "1.2.3", "patient_key": "pk", "protocols": sorted(files),
              "files": [files[p] for p in sorted(files)]}
    study = load_study(record)
    before = {p: read_volume(f).hu for p, f in files.items()}  # the arrays training used, slice k with slice k
    assert set(study) == set(before) and not study.coverage
    assert all(np.array_equal(study[p], before[p]) for p in before)
    assert all(o.used and o.identity for o in study.outcomes) and len(study.outcomes) == 5
    new = PairedPatchSampler([study], 16, "M80", np.random.default_rng(1)).sample(12)
    old = PairedPatchSampler([before], 16, "M80", np.random.default_rng(1)).sample(12)
    assert new[2] == old[2] and np.array_equal(new[0], old[0]) and np.array_equal(new[1], old[1])

