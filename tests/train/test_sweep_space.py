"""The sweep's search space (YAML -> Tune) and the CLI's refusal to sweep without an objective."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from ctharmony.cli import app
from ctharmony.config import ConfigError
from ctharmony.models.registry import load_spec
from ctharmony.train.sweep.space import DEFAULT_SPACE, SweepSpace


def test_default_space_sweeps_the_three_lambdas_and_tries_the_paper_first():
    space = SweepSpace.load()
    assert DEFAULT_SPACE.name == "space.yaml"
    assert space.keys[:3] == ["loss.l1", "loss.perceptual", "loss.gan"]
    assert space.points_to_evaluate[0] == {"loss.l1": 10.0, "loss.perceptual": 1.0, "loss.gan": 1.0}
    low, high = space.params["loss.l1"]["loguniform"]
    assert low < 10.0 < high  # around the paper's λ1
    tune_space = space.to_tune()
    assert 3.0 <= tune_space["loss.l1"].sample() <= 30.0
    assert tune_space["loss.gan"].sample() in (0.1, 0.3, 1.0)


def test_trial_config_becomes_spec_overrides_that_load():
    import numpy as np

    space = SweepSpace.from_dict({"params": {"loss.l1": {"uniform": [1, 20]}, "optim.lr": {"choice": [1e-4]}}})
    overrides = space.overrides({"loss.l1": np.float64(12.5), "optim.lr": 1e-4, "unrelated": 1})
    assert overrides == ["loss.l1=12.5", "optim.lr=0.0001"]
    spec = load_spec("cpu-small", overrides)
    assert spec.loss.l1 == 12.5 and spec.optim.lr == 1e-4
    assert SweepSpace.from_dict({"params": {"a": {"grid": [1, 2, 3]}, "b": {"grid": [1, 2]}}}).total_trials(2) == 12


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"params": {}}, "non-empty 'params'"),
        ({"params": {"loss.l1": {"normal": [0, 1]}}}, "unknown distribution 'normal'"),
        ({"params": {"loss.l1": {"loguniform": [0, 10]}}}, "low > 0"),
        ({"params": {"loss.l1": {"uniform": [5, 1]}}}, "low < high"),
        ({"params": {"loss.l1": 1.0}, "points_to_evaluate": [{"loss.gan": 1}]}, "not in params"),
        ({"params": {"loss.l1": 1.0}, "sampler": "tpe"}, "unknown key"),
    ],
)
def test_bad_space_is_refused_with_the_key_and_file(tmp_path, data, message):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as err:
        SweepSpace.load(path)
    assert str(path) in str(err.value)


def test_cli_sweep_needs_a_segmenter_for_its_objective(tmp_path):
    from ctharmony.archive.catalog import catalog_frame, write_catalog

    write_catalog(catalog_frame([]), tmp_path / "c.parquet")  # a valid (empty) catalog: checked before the segmenter
    result = CliRunner().invoke(app, ["sweep", "--catalog", str(tmp_path / "c.parquet"), "--trials", "2"])
    assert result.exit_code != 0
    assert "--segmenter" in result.output
