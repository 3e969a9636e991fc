"""Series selection (only the chosen series are made and written), the dose augment, the unseen Canon site."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from ctharmony.archive.catalog import read_header_chunk
from ctharmony.archive.protocols import load_rules
from ctharmony.archive.scan import list_archive
from ctharmony.archive.series import group_series
from ctharmony.scanmodel.anatomy import patient_grid, sample_patient
from ctharmony.scanmodel.sites import load_site
from ctharmony.simulate import simulate_archive
from ctharmony.simulate.maps import Augment, phantom_maps
from ctharmony.simulate.realism import liver_roi
from ctharmony.simulate.studies import patient_scanner

# Canon series folder -> the protocol the default catalog rules must give it
CANON = {"FBP": "FBP", "IR": "IR", "M40": "M40", "M60": "M60", "M80": "M80", "OPT": "OPT", "FBP_soft": "FBP",
         "FBP_sharp": "unknown", "IR_Mild": "IR", "IR_Strong": "IR"}


def test_only_the_chosen_series_are_written(tmp_path):
    table = simulate_archive(tmp_path, patients=1, slices=2, size=32, seed=5, series=["M40", "IR"])
    row = table.iloc[0]
    folder = tmp_path / "dicom" / "siemens-force" / row["patient_id"]
    assert sorted(p.name for p in folder.iterdir()) == ["IR", "M40"]
    assert row["series_uid_M40"] and row["series_uid_FBP"] is None
    assert sorted(p.name for p in (tmp_path / "truth" / row["study_uid"]).iterdir()) == ["T40.npz", "T60.npz",
                                                                                          "T80.npz"]
    assert json.loads(row["params"])["series"] == ["IR", "M40"]
    assert pd.read_parquet(tmp_path / "phantom.parquet")["series_uid_OPT"].isna().all()


def test_unknown_series_names_the_choices(tmp_path):
    with pytest.raises(ValueError, match=r"unknown series M70; choices: FBP, IR, M40.*IR_3.*IR_60"):
        simulate_archive(tmp_path, series=["M80", "M70"])


def test_reconstruct_skips_what_is_not_asked(tmp_path):
    params = sample_patient(np.random.default_rng([2, 0]))
    site = load_site("siemens-force")
    grid = patient_grid(params, site, 1, 32, 0.0)
    maps = phantom_maps(params, grid)
    scanner = patient_scanner(site, grid, Augment())
    images = scanner.reconstruct(scanner.project(maps), maps, None, series=["M80", "IR_5"])
    assert set(images) == {"LOW", "HIGH", "FBP", "M80", "IR_5", "T40", "T60", "T80"}
    everything = scanner.reconstruct(scanner.project(maps), maps, None)
    assert {"IR", "IR_3", "FBP_soft", "FBP_sharp", "OPT", "M40_plain"} <= set(everything)
    for name in images:
        assert np.array_equal(images[name], everything[name]), name  # the same images, only fewer


def test_dose_scale_sets_the_noise():
    """A quarter of the mAs: twice the quantum noise, a little more with the electronic noise (noise-only images)."""
    params = sample_patient(np.random.default_rng([2, 1]))
    site = load_site("siemens-force")
    quiet = dataclasses.replace(site, detector=dataclasses.replace(site.detector, electronic_noise=0.0))
    grid = patient_grid(params, site, 2, 64, 0.0)
    maps = phantom_maps(params, grid)
    roi = liver_roi(maps, erode_mm=10.0)
    assert roi.sum() > 100
    ratio = {}
    for name, s in (("quantum", quiet), ("all", site)):
        sd = {}
        for dose in (1.0, 0.25):
            scanner = patient_scanner(s, grid, Augment(dose_scale=dose))
            assert scanner.mas == pytest.approx(site.mas * dose)
            lines = scanner.project(maps)
            noisy = scanner.reconstruct(lines, maps, np.random.default_rng(7), series=["FBP"])["FBP"]
            clean = scanner.reconstruct(lines, maps, None, series=["FBP"])["FBP"]
            sd[dose] = float((noisy - clean)[roi].std())
        ratio[name] = sd[0.25] / sd[1.0]
    assert ratio["quantum"] == pytest.approx(2.0, rel=0.08)
    assert ratio["quantum"] < ratio["all"] < 1.5 * ratio["quantum"]


def test_phantom_dose_augment_is_opt_in(tmp_path):
    plain = simulate_archive(tmp_path / "a", patients=2, slices=1, size=32, seed=4, series=["FBP"])
    varied = simulate_archive(tmp_path / "b", patients=2, slices=1, size=32, seed=4, series=["FBP"], augment=True)
    assert all("dose_scale" not in json.loads(p) for p in plain["params"])
    doses = [json.loads(p)["dose_scale"] for p in varied["params"]]
    assert all(d in (0.5, 1.0, 1.5) for d in doses)
    assert list(plain["liver_volume_ml"]) == list(varied["liver_volume_ml"])  # same anatomy, only the dose varies


def test_canon_site_is_a_combination_no_other_site_has():
    canon = load_site("canon-aquilion")
    others = [load_site(n) for n in ("siemens-force", "ge-revolution")]
    assert canon.dual_energy.high.kvp not in {s.dual_energy.high.kvp for s in others}
    assert canon.kernels["standard"].cutoff_lp_mm > max(s.kernels["standard"].cutoff_lp_mm for s in others)
    assert canon.mas < min(s.mas for s in others)
    assert canon.slice_thickness_mm < min(s.slice_thickness_mm for s in others)
    assert set(canon.ir.strengths) == {"Mild", "Standard", "Strong"}


def test_canon_series_get_their_protocols(tmp_path):
    simulate_archive(tmp_path, patients=1, slices=2, size=32, seed=3, sites=["canon-aquilion"])
    listing = list_archive(tmp_path / "dicom")
    table = read_header_chunk({"paths": [listing.files]}, salt="test-salt", root=str(listing.root))
    rows = group_series(table.drop_columns(["node_id"]).to_pylist(), load_rules().classify)
    seen = {}
    for row in rows:
        assert row["status"] == "ok", row["reason"]
        seen[row["files"][0].split("/")[-2]] = (row["protocol"], row["protocol_rule"])
    assert {name: protocol for name, (protocol, _) in seen.items()} == CANON, seen
    assert seen["IR"][1] == "canon-aidr-aice" and seen["FBP"][1] == "canon-fbp-kernel"
