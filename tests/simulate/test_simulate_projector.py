"""Projector backends: adjointness, exact FBP of a known object, and agreement between svmbir and scikit-image."""

import numpy as np
import pytest

from ctharmony.scanmodel.kernels import Kernel
from ctharmony.simulate.projector import Geometry, make_projector
from ctharmony.simulate.recon import fbp

SIZE = 64


def _object() -> np.ndarray:
    yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2.0
    body = (np.hypot(yy / 0.8, xx) < 26).astype(np.float32)
    insert = (np.hypot(yy - 6, xx + 8) < 5).astype(np.float32) * 0.5
    return (body + insert)[None]


@pytest.mark.parametrize("backend", ["svmbir", "skimage"])
def test_back_is_the_adjoint(backend):
    proj = make_projector(backend, Geometry(SIZE, 96))
    rng = np.random.default_rng(0)
    x = rng.random((1, SIZE, SIZE)).astype(np.float32) * _object()
    y = rng.random((1, 96, proj.geometry.channels)).astype(np.float32)
    lhs, rhs = float((proj.forward(x) * y).sum()), float((x * proj.back(y)).sum())
    assert lhs == pytest.approx(rhs, rel=0.02)


@pytest.mark.parametrize("backend", ["svmbir", "skimage"])
def test_fbp_recovers_the_object_in_hu(backend):
    proj = make_projector(backend, Geometry(SIZE, 96))
    water = _object()  # relative attenuation: body = water (0 HU), insert = +500 HU
    sino = proj.forward(water) * 0.1  # 1 mm pixels: line integrals in cm of water
    hu = fbp(proj, sino, [Kernel("B", 0.5)], pixel_mm=1.0)[0]
    yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2.0
    assert abs(float(np.median(hu[np.hypot(yy + 8, xx - 6) < 6]))) < 15  # water
    assert float(np.median(hu[np.hypot(yy - 6, xx + 8) < 3])) == pytest.approx(500, abs=40)


def test_backends_give_the_same_image():
    images = []
    for backend in ("svmbir", "skimage"):
        proj = make_projector(backend, Geometry(SIZE, 96))
        images.append(fbp(proj, proj.forward(_object()) * 0.1, [Kernel("B", 0.4)], pixel_mm=1.0)[0])
    inside = _object()[0] > 0
    assert float(np.abs(images[0] - images[1])[inside].mean()) < 25


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match="unknown projector backend 'astra'"):
        make_projector("astra", Geometry(SIZE, 96))
