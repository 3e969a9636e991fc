"""Real anatomy: the real Siemens series becomes material maps and is re-simulated (with augmentation)."""

import numpy as np
import pytest

from ctharmony.archive.reader import read_series
from ctharmony.evaluate import metrics
from ctharmony.scanmodel.sites import load_site
from ctharmony.simulate.maps import Augment, real_maps
from ctharmony.simulate.scanner import Scanner


@pytest.mark.slow
def test_real_series_resimulated(real_data):
    volume = read_series(sorted((real_data / "siemens-abdomen-ct").iterdir()))
    liver = metrics.truth_on_grid(real_data / "siemens-abdomen-ct-liver.nii.gz", volume.hu.shape, volume.spacing,
                                  volume.origin, volume.direction)
    pick = [i for i in range(volume.hu.shape[0]) if liver[i].sum() > 5000][:2]
    assert len(pick) == 2
    site = load_site("siemens-force")
    size, fov = 128, 400.0
    scanner = Scanner(site, size, fov_mm=fov)
    liver_hu = {}
    for name, augment in (("base", Augment()), ("more iodine", Augment(iodine_scale=1.3))):
        maps = real_maps(volume.hu[pick], volume.spacing[1], size, fov, liver=liver[pick], augment=augment)
        assert maps.liver is not None and maps.liver.sum() > 500
        images = scanner.reconstruct(scanner.project(maps), maps, np.random.default_rng(0))
        inner = maps.liver.astype(bool)
        liver_hu[name] = {p: float(np.median(images[p][inner])) for p in ("M40", "M80", "FBP")}
    source = float(np.median(volume.hu[pick][liver[pick].astype(bool)]))
    assert liver_hu["base"]["FBP"] == pytest.approx(source, abs=25)  # the re-simulated 120 kVp-like image
    assert liver_hu["base"]["M40"] > liver_hu["base"]["M80"] + 30  # enhanced liver: brighter at 40 keV
    assert liver_hu["more iodine"]["M40"] > liver_hu["base"]["M40"] + 10
