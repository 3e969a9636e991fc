from __future__ import annotations

import pytest

from ctharmony.config import ConfigError
from ctharmony.models import build, load_spec
from ctharmony.models.registry import NETWORKS, specs_dir


def test_every_model_spec_builds() -> None:
    names = ["paper", "cpu-small", "liver-unet"]
    assert all((specs_dir() / f"{name}.yaml").is_file() for name in names)
    for name in names:
        spec = load_spec(name)
        assert spec.kind in NETWORKS
        assert build(spec).info["spec"] == spec.name


def test_paper_spec_holds_the_paper_recipe() -> None:
    spec = load_spec("paper")
    assert (spec.loss.l1, spec.loss.perceptual, spec.loss.gan) == (10.0, 1.0, 1.0)
    assert spec.optim.lr == 1e-4 and spec.optim.betas == (0.9, 0.99) and spec.optim.lr_decay == 0.95
    assert spec.train.patch_size == 256 and spec.generator.unshuffle == 2
    assert spec.train.epochs_stage1 + spec.train.epochs_stage2 == 200


def test_overrides_and_unknown_names() -> None:
    assert load_spec("cpu-small", ["loss.l1=3", "train.epochs_stage1=1"]).loss.l1 == 3.0
    with pytest.raises(ConfigError, match="unknown model spec"):
        load_spec("no-such-spec")
    with pytest.raises(ConfigError, match="unknown key"):
        load_spec("cpu-small", ["loss.lambda9=1"])
