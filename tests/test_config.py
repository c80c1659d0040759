"""Every shipped config instantiates; bad keys and values fail with the key's name."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from omiga_pl.config import ExperimentConfig, load_config
from omiga_pl.errors import ConfigError

CONF = Path(__file__).resolve().parent.parent / "conf"
# Fit configs; conf/sweep/ holds sweep files (tests/test_sweep.py reads them).
ALL_YAML = sorted(p for p in CONF.rglob("*.yaml") if "sweep" not in p.relative_to(CONF).parts)


def test_there_are_configs():
    assert CONF / "smac.yaml" in ALL_YAML
    assert {p.name for p in (CONF / "trainer").glob("*.yaml")} >= {"cpu.yaml", "gpu.yaml", "ddp.yaml"}


@pytest.mark.parametrize("path", ALL_YAML, ids=lambda p: str(p.relative_to(CONF)))
def test_every_config_instantiates(path):
    config = load_config([path])
    typed = OmegaConf.to_object(config)
    assert isinstance(typed, ExperimentConfig)


def test_presets_merge_onto_a_task_config():
    config = load_config([CONF / "smac.yaml", CONF / "trainer" / "ddp.yaml"], ["trainer.max_steps=7"])
    assert config.trainer.strategy == "ddp" and config.trainer.devices == 2
    assert config.trainer.max_steps == 7
    assert config.env.family is None and config.env.scenario is None  # the dataset card decides


def test_overrides_are_typed():
    config = load_config([CONF / "smac.yaml"], ["algo.alpha=3", "data.batch_size=64", "eval.enabled=false"])
    assert config.algo.alpha == 3.0 and config.data.batch_size == 64 and config.eval.enabled is False


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["algo.alpah=3"], "command line: key 'algo.alpah': unknown key"),
        (["nonsense=1"], "command line: key 'nonsense': unknown key"),
        (
            ["trainer.max_steps=many"],
            "command line: key 'trainer.max_steps': Value 'many' of type 'str' could not",
        ),
        (["data.batch_size=0"], "key 'data.batch_size': expected a positive value, found 0"),
        (["algo.tau=2"], "key 'algo.tau': expected a value in (0, 1], found 2.0"),
        (["algo.action_eps=1"], "key 'algo.action_eps': expected a value in (0, 1), found 1.0"),
        (["trainer.precision=16-mixed"], "key 'trainer.precision': float16"),
        (["seed"], "override 'seed' is not of the form key=value"),
    ],
)
def test_bad_overrides_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as caught:
        load_config([CONF / "smac.yaml"], overrides)
    assert message in str(caught.value)


def test_bad_yaml_file_names_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("algo:\n  gama: 0.9\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: key 'algo.gama': unknown key"):
        load_config([bad])
    wrong_type = tmp_path / "wrong.yaml"
    wrong_type.write_text("eval:\n  every: soon\n")
    with pytest.raises(ConfigError, match=r"wrong.yaml: key 'eval.every': Value 'soon'"):
        load_config([wrong_type])
    with pytest.raises(ConfigError, match="missing.yaml: config file not found"):
        load_config([tmp_path / "missing.yaml"])
    broken = tmp_path / "broken.yaml"
    broken.write_text("algo: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_config([broken])
