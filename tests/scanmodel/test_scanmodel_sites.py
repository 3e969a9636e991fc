"""Site YAML: the packaged sites load; a broken file fails with its path and the key."""

from pathlib import Path

import pytest

from ctharmony.config import ConfigError
from ctharmony.scanmodel.sites import load_site, site_names


def test_packaged_sites_load():
    names = site_names()
    assert {"siemens-force", "ge-revolution"} <= set(names)
    for name in names:
        site = load_site(name)
        assert site.dual_energy.low.kvp < site.dual_energy.high.kvp
        assert site.ir.archive_strength in site.ir.strengths
        assert set(site.kernels) == {"soft", "standard", "sharp"}


def test_user_site_file(tmp_path):
    text = Path(load_site("siemens-force").source).read_text()
    path = tmp_path / "mine.yaml"
    path.write_text(text.replace("name: siemens-force", "name: my-scanner").replace("mas: 120", "mas: 60"))
    site = load_site(path)
    assert (site.name, site.mas) == ("my-scanner", 60.0)


@pytest.mark.parametrize(("edit", "message"), [
    (("  standard: {name: Br40, cutoff_lp_mm: 0.55}\n", ""), "kernels: missing key 'standard'"),
    (("mas: 120", "mas: lots"), "key 'mas' must be float"),
    (("fov_mm: 360", "fov: 360"), "unknown key\\(s\\) fov"),
    (("archive_strength: 3", "archive_strength: 9"), "archive_strength '9'"),
    (("kvp: 80,", "kvp: 20,"), "dual_energy.low: Beam: kVp"),
])
def test_bad_site_names_file_and_key(tmp_path, edit, message):
    text = Path(load_site("siemens-force").source).read_text()
    assert edit[0] in text
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace(*edit))
    with pytest.raises(ConfigError, match=message) as info:
        load_site(path)
    assert str(path) in str(info.value)


def test_unknown_site_lists_the_packaged_ones():
    with pytest.raises(ConfigError, match="siemens-force"):
        load_site("nowhere")
