from __future__ import annotations

import dataclasses

import pytest

from ctharmony.config import ConfigError, dump_yaml, flatten, load_config, parse_overrides


@dataclasses.dataclass
class Optim:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)


@dataclasses.dataclass
class Spec:
    name: str = "x"
    epochs: int = 2
    optim: Optim = dataclasses.field(default_factory=Optim)
    note: str | None = None


def test_yaml_with_override_applied(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("name: small\nepochs: 4\noptim:\n  lr: 0.001\n", encoding="utf-8")
    spec = load_config(Spec, path, ["optim.lr=2e-4", "epochs=7", "optim.betas=[0.5, 0.9]"])
    assert spec == Spec(name="small", epochs=7, optim=Optim(lr=2e-4, betas=(0.5, 0.9)))
    assert isinstance(spec.optim.lr, float)


def test_unknown_key_rejected_naming_key_and_file(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("optim:\n  learning_rate: 0.1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(Spec, path)
    assert "optim.learning_rate" in str(err.value)
    assert str(path) in str(err.value)


def test_unknown_override_rejected():
    with pytest.raises(ConfigError, match="epoch"):
        load_config(Spec, None, ["epoch=3"])


def test_wrong_type_rejected(tmp_path):
    with pytest.raises(ConfigError, match="epochs"):
        load_config(Spec, None, ["epochs=many"])


def test_malformed_override():
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["epochs"])


def test_missing_file_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(Spec, tmp_path / "nope.yaml")


def test_dump_roundtrip(tmp_path):
    spec = load_config(Spec, None, ["note=hello"])
    path = tmp_path / "again.yaml"
    path.write_text(dump_yaml(spec), encoding="utf-8")
    assert load_config(Spec, path) == spec
    assert flatten({"optim": {"lr": 1}}) == {"optim.lr": 1}
