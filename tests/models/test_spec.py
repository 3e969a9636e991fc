"""Specs beside the networks: config re-exports them, defaults agree with the protocol registry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ctharmony import config
from ctharmony.archive.protocols import PAPER_PROTOCOLS, REFERENCE_PROTOCOL
from ctharmony.models import spec as model_spec
from ctharmony.models import typed_yaml
from ctharmony.models.spec import ExternalSpec, ModelSpec, TrainSpec

PLATFORM = Path(__file__).resolve().parents[2] / "platform"


def test_config_reexports_the_models_specs_and_loader() -> None:
    for name in ("IntensitySpec", "GeneratorSpec", "DiscriminatorSpec", "UNetSpec", "LossSpec", "OptimSpec",
                 "TrainSpec", "ModelSpec"):
        assert getattr(config, name) is getattr(model_spec, name)
    for name in ("ConfigError", "from_dict", "to_dict", "load_config", "parse_overrides", "merge", "dump_yaml"):
        assert getattr(config, name) is getattr(typed_yaml, name)


def test_train_defaults_are_the_protocol_registrys() -> None:
    assert TrainSpec().target_protocol == REFERENCE_PROTOCOL
    assert TrainSpec().protocols == PAPER_PROTOCOLS


def test_importing_a_spec_pulls_in_no_torch() -> None:
    code = ("import sys; import ctharmony.config, ctharmony.models.spec; "
            "print('torch' in sys.modules, 'mlflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         encoding="utf-8", errors="replace", check=True,
                         env={"PYTHONPATH": str(PLATFORM), "PATH": "/usr/bin:/bin"})
    assert out.stdout.split() == ["False", "False"]


def test_external_spec_checks_its_values() -> None:
    assert ExternalSpec(kind="harmonizer").output == "normalized"
    with pytest.raises(ValueError, match="dims must be 2"):
        ExternalSpec(dims=4)
    with pytest.raises(ValueError, match="output of a segmenter"):
        ExternalSpec(output="mask")
    with pytest.raises(typed_yaml.ConfigError, match=r"unknown key\(s\) hu in x.yaml"):
        typed_yaml.from_dict(ExternalSpec, {"hu": 1}, "x.yaml")
    assert typed_yaml.from_dict(ModelSpec, {"kind": "segmenter"}).kind == "segmenter"
