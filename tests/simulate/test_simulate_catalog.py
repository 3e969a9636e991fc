"""The catalog recognizes the simulated sites' series: the paper's six as their protocol, the extras as stated."""

import pytest

from ctharmony.archive.catalog import read_header_chunk
from ctharmony.archive.protocols import load_rules
from ctharmony.archive.scan import list_archive
from ctharmony.archive.series import group_series
from ctharmony.simulate import simulate_archive

# series folder -> protocol the catalog gives it (the README's Scanner simulation section states the same)
EXPECTED = {"FBP": "FBP", "IR": "IR", "M40": "M40", "M60": "M60", "M80": "M80", "OPT": "OPT",
            "FBP_soft": "FBP", "FBP_sharp": "unknown", "IR_5": "IR", "IR_60": "IR"}


@pytest.fixture(scope="module")
def catalog_rows(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    simulate_archive(out, patients=2, slices=2, size=32, seed=2)
    listing = list_archive(out / "dicom")
    table = read_header_chunk({"paths": [listing.files]}, salt="test-salt", root=str(listing.root))
    records = table.drop_columns(["node_id"]).to_pylist()
    return group_series(records, load_rules().classify)


def test_every_simulated_series_gets_its_protocol(catalog_rows):
    seen = {}
    for row in catalog_rows:
        assert row["status"] == "ok", row["reason"]
        site, name = row["files"][0].split("/")[-4], row["files"][0].split("/")[-2]
        seen[site, name] = (row["protocol"], row["protocol_rule"])
    assert {site for site, _ in seen} == {"siemens-force", "ge-revolution"}
    for (site, name), (protocol, rule) in seen.items():
        assert protocol == EXPECTED[name], f"{site}/{name}: {protocol} by rule {rule}"
    assert len(seen) == 2 * 9  # six protocols + soft, sharp, other IR strength at each site
