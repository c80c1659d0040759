"""MPE through mpe2: the behaviour/level pipeline, the bundled files, OMAR data evaluable in mpe2."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from omiga_pl.data.compat import check_dataset_matches_env
from omiga_pl.data.formats.native import read_native
from omiga_pl.data.formats.omar_mpe import import_omar
from omiga_pl.data.formats.synthetic import write_omar
from omiga_pl.envs import env_options, env_spec, make_env
from omiga_pl.envs.pettingzoo_in import mpe2_id
from omiga_pl.errors import ConfigError
from omiga_pl.rollout import rollout

ROOT = Path(__file__).resolve().parent.parent
LEVELS = ("random", "medium_replay", "medium", "expert")


def test_mpe_names_resolve_to_mpe2_modules():
    assert mpe2_id("simple_spread") == "mpe2.simple_spread_v3"
    assert mpe2_id("simple_spread_v3") == "mpe2.simple_spread_v3"
    assert mpe2_id("mpe2.simple_tag_v3") == "mpe2.simple_tag_v3"
    with pytest.raises(ConfigError, match="simple_spread_v3"):
        mpe2_id("cooperative_navigation")


@pytest.mark.parametrize("one_hot", [True, False])
def test_omar_simple_spread_evaluates_in_mpe2(tmp_path, one_hot):
    src = tmp_path / "simple_spread" / "medium" / "seed_0_data"
    write_omar(src, n_episodes=2, episode_length=25, one_hot=one_hot)
    data, card = import_omar(src, episode_length=25)
    assert (card["env_family"], card["scenario"]) == ("mpe", "simple_spread")
    options = env_options("mpe", {}, {**card, "action_type": data.dims.action_type}, eval_enabled=True)
    spec = env_spec("mpe", "simple_spread", **options)
    check_dataset_matches_env(src, data, spec)  # sizes and action type agree
    assert spec.dims == data.dims
    env = make_env("mpe", "simple_spread", num_envs=2, **options)
    if one_hot:
        stats = rollout(env, lambda r: np.zeros((2, 3), dtype=np.int64), seed=0)
    else:
        stats = rollout(env, lambda r: np.zeros((2, 3, 5), dtype=np.float32), seed=0)
    assert (stats.lengths == 25).all() and np.isfinite(stats.returns).all()


def test_omar_predator_prey_does_not_fit_mpe2_and_says_why(tmp_path):
    """OMAR's simple_tag data holds the 3 predators only; mpe2's simple_tag has 4 agents."""
    src = tmp_path / "simple_tag" / "expert" / "seed_0_data"
    write_omar(src, n_episodes=1, episode_length=25, obs_dim=16, one_hot=True)
    data, _ = import_omar(src, episode_length=25)
    from omiga_pl.errors import DatasetError

    with pytest.raises(DatasetError, match="agent count does not match.*expected 4, found 3"):
        check_dataset_matches_env(src, data, env_spec("mpe", "simple_tag"))


def test_behaviour_and_levels_pipeline_is_deterministic(tmp_path):
    from omiga_pl.generate.mpe import levels
    from omiga_pl.generate.mpe_behaviour import train

    progress = train(tmp_path / "b", "mpe2.simple_spread_v3", 600, 300, seed=1, copies=2, eval_episodes=3)
    assert sorted(int(s) for s in progress["checkpoints"]) == [0, 300, 600]
    cards = []
    for out in ("d1", "d2"):
        args = argparse.Namespace(
            behaviour_dir=tmp_path / "b",
            out_dir=tmp_path / out,
            prefix="mpe_t",
            levels=["random", "medium-replay", "medium", "expert"],
            episodes=4,
            replay_episodes=3,
            num_envs=3,
            seed=0,
            overwrite=False,
            command="python -m omiga_pl.generate mpe levels ...",
        )
        cards.append(levels(args))
    for level in cards[0]:
        assert cards[0][level]["sha256"] == cards[1][level]["sha256"]  # same bytes twice
    expert = cards[0]["expert"]
    assert expert["reference_returns"]["expert"] == pytest.approx(expert["return_mean"])
    assert cards[0]["random"]["reference_returns"]["random"] == pytest.approx(
        cards[0]["random"]["return_mean"]
    )
    data, card = read_native(tmp_path / "d1" / "mpe_t_medium_replay.h5")
    assert data.n_episodes == 3 and card["env_family"] == "pettingzoo"
    assert (data.episode_lengths == 25).all() and data.truncations.sum() == 3 and data.terminations.sum() == 0


@pytest.mark.parametrize("level", LEVELS)
def test_bundled_mpe_files_match_mpe2_and_their_cards(level):
    path = ROOT / "data" / f"mpe_simple_spread_{level}.h5"
    data, card = read_native(path)
    spec = env_spec(card["env_family"], card["scenario"], max_steps=card["episode_limit"])
    check_dataset_matches_env(path, data, spec)
    assert card["quality"] == level.replace("_", "-")
    assert card["return_mean"] == pytest.approx(float(data.episode_returns().mean()))


def test_bundled_levels_are_ordered():
    returns = {
        level: read_native(ROOT / "data" / f"mpe_simple_spread_{level}.h5")[1]["return_mean"]
        for level in LEVELS
    }
    assert returns["random"] < returns["medium_replay"] < returns["expert"]
    assert returns["random"] < returns["medium"] < returns["expert"]
