"""data.obs_normalization: dataset-statistics standardisation of observations and states,
reference-mode MaMuJoCo vectors decoded exactly first; the same map at evaluation."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import QUIET, ROOT

from omiga_pl.config import load_config
from omiga_pl.data.datamodule import OfflineMARLDataModule
from omiga_pl.data.formats.native import read_card, read_native
from omiga_pl.data.obs_norm import (
    decode_reference,
    fit_normalizer,
    normalize_rows,
    resolve_obs_normalization,
)
from omiga_pl.envs.mamujoco import MaMuJoCoVecEnv, reference_observations
from omiga_pl.envs.normalized import NormalizedObservations
from omiga_pl.errors import CheckpointError, ConfigError, DatasetError
from omiga_pl.fit import main

HOPPER = ROOT / "data" / "mamujoco_hopper_3x1_medium.h5"
REFERENCE_CARD = {"env_family": "mamujoco", "obs_mode": "reference"}


@pytest.mark.parametrize("n_agents", [2, 3, 6])
def test_decoding_inverts_the_reference_standardisation(n_agents):
    g = np.random.default_rng(n_agents).normal(0.0, 3.0, size=(50, 17))
    z = reference_observations(g, n_agents)  # [50, N, 17 + N] float32
    decoded = decode_reference(z)
    assert decoded.shape == (50, n_agents, 17)
    np.testing.assert_allclose(decoded, np.broadcast_to(g[:, None], decoded.shape), atol=2e-5)


def test_decoding_the_bundled_file_gives_its_recorded_global_states():
    import h5py

    data, _ = read_native(HOPPER)
    with h5py.File(HOPPER) as handle:
        g = handle["global_states"][()]
    np.testing.assert_allclose(
        decode_reference(data.observations), np.broadcast_to(g[:, None], (*g.shape[:1], 3, 11)), atol=1e-4
    )


def test_reference_kind_standardises_the_decoded_features_and_keeps_raw_ids():
    g = np.array([[1.0, 10.0, 5.0], [3.0, 30.0, 5.0], [2.0, 20.0, 5.0], [6.0, 0.0, 5.0]])
    z = reference_observations(g, 2)
    normalizer = fit_normalizer("hand.h5", z, None, REFERENCE_CARD)
    assert normalizer.kind == "reference_decoded"
    # Hand-computed: column means 3, 15, 5; population stds sqrt(3.5), sqrt(125), 0 -> 1.
    np.testing.assert_allclose(normalizer.obs_mean, [3.0, 15.0, 5.0], atol=1e-5)
    np.testing.assert_allclose(normalizer.obs_std, [np.sqrt(3.5), np.sqrt(125.0), 1.0], rtol=1e-5)
    out = normalize_rows(normalizer, z)
    assert out.shape == z.shape and out.dtype == np.float32
    expected_first = [(1.0 - 3.0) / np.sqrt(3.5), (10.0 - 15.0) / np.sqrt(125.0), 0.0]
    np.testing.assert_allclose(out[0, 0, :3], expected_first, atol=1e-5)
    np.testing.assert_allclose(out[0, 1, :3], expected_first, atol=1e-5)
    np.testing.assert_array_equal(out[:, :, 3:], np.broadcast_to(np.eye(2), (4, 2, 2)))
    # A state is the agents' vectors concatenated, each mapped like an observation.
    states = z.reshape(4, -1)
    np.testing.assert_allclose(normalizer.states(states), out.reshape(4, -1), atol=1e-6)


def test_features_kind_pools_agents_and_centres_constant_features():
    obs = np.array([[[1.0, 7.0], [3.0, 7.0]], [[5.0, 7.0], [7.0, 7.0]]], dtype=np.float32)  # [R=2, N=2, O=2]
    states = np.array([[0.0, 2.0], [4.0, 2.0]], dtype=np.float32)
    normalizer = fit_normalizer("hand.h5", obs, states, {"env_family": "smax"})
    assert normalizer.kind == "features"
    np.testing.assert_allclose(normalizer.obs_mean, [4.0, 7.0])
    np.testing.assert_allclose(normalizer.obs_std, [np.sqrt(5.0), 1.0])
    np.testing.assert_allclose(normalizer.state_mean, [2.0, 2.0])
    np.testing.assert_allclose(normalizer.state_std, [2.0, 1.0])
    out = normalizer.observations(obs)
    np.testing.assert_allclose(out[..., 0], (obs[..., 0] - 4.0) / np.sqrt(5.0), rtol=1e-6)
    np.testing.assert_array_equal(out[..., 1], 0.0)
    np.testing.assert_allclose(normalizer.states(states), [[-1.0, 0.0], [1.0, 0.0]])


def test_data_that_is_not_reference_encoded_is_refused_with_the_file_and_field():
    obs = np.random.default_rng(0).normal(size=(20, 3, 14)).astype(np.float32)
    with pytest.raises(DatasetError, match=r"odd\.h5: field 'observations': .*re-encoding.*differs"):
        fit_normalizer("odd.h5", obs, None, REFERENCE_CARD)
    with pytest.raises(DatasetError, match=r"one\.h5: field 'observations': .*>= 2 agents"):
        fit_normalizer("one.h5", obs[:, :1], None, REFERENCE_CARD)
    z = reference_observations(np.random.default_rng(1).normal(size=(20, 11)), 3)
    with pytest.raises(
        DatasetError, match=r"states\.h5: field 'states': .*concatenated \(42 values\), found 11"
    ):
        fit_normalizer("states.h5", z, np.zeros((20, 11), dtype=np.float32), REFERENCE_CARD)


def test_auto_resolves_by_the_data():
    assert resolve_obs_normalization("auto", "mamujoco", {"obs_mode": "reference"}) == "standardize"
    assert resolve_obs_normalization("auto", "mamujoco", {}) == "standardize"
    assert resolve_obs_normalization("auto", "mamujoco", {"obs_mode": "local"}) == "none"
    assert resolve_obs_normalization("auto", "smax", {}) == "none"
    assert resolve_obs_normalization("none", "mamujoco", {}) == "none"
    assert resolve_obs_normalization("standardize", "smax", {}) == "standardize"
    with pytest.raises(ConfigError, match=r"'data.obs_normalization': expected one of .*found 'zscore'"):
        resolve_obs_normalization("zscore", "smax", {})


def test_reference_preset_keeps_the_stored_observations():
    config = load_config(
        [str(ROOT / "conf" / "mamujoco.yaml"), str(ROOT / "conf" / "presets" / "reference.yaml")], []
    )
    assert config.data.obs_normalization == "none"
    default = load_config([str(ROOT / "conf" / "mamujoco.yaml")], [])
    card = read_card(HOPPER)
    assert resolve_obs_normalization(default.data.obs_normalization, "mamujoco", card) == "standardize"


def test_datamodule_serves_normalised_rows_and_refuses_another_map_on_resume():
    raw, card = read_native(HOPPER)
    plain = OfflineMARLDataModule(HOPPER, storage_on_device=False)
    np.testing.assert_array_equal(plain.load().observations.numpy(), raw.observations)
    assert plain.normalizer is None
    standardized = OfflineMARLDataModule(HOPPER, storage_on_device=False, obs_normalization="standardize")
    storage = standardized.load()
    expected = normalize_rows(fit_normalizer(HOPPER, raw.observations, None, card), raw.observations)
    np.testing.assert_array_equal(storage.observations.numpy(), expected)
    np.testing.assert_array_equal(storage.states.numpy(), expected.reshape(len(expected), -1))
    features = storage.observations.numpy()[:, 0, :11]
    np.testing.assert_allclose(features.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(features.std(0), 1.0, atol=1e-4)
    assert standardized.state_dict()["normalizer"]["kind"] == "reference_decoded"
    with pytest.raises(CheckpointError, match=r"field 'obs_normalization' was none when saved"):
        standardized.check_state(plain.state_dict())


def test_evaluation_env_is_mapped_as_the_training_data():
    raw, card = read_native(HOPPER)
    normalizer = fit_normalizer(HOPPER, raw.observations, None, card)
    env = MaMuJoCoVecEnv("Hopper-3x1", 2)
    wrapped = NormalizedObservations(env, normalizer)
    first = wrapped.reset(seed=3)
    g = env.global_states()
    expected = (g - normalizer.obs_mean) / normalizer.obs_std
    for agent in range(3):
        np.testing.assert_allclose(first.observations[:, agent, :11], expected, atol=1e-4)
    np.testing.assert_array_equal(first.states, first.observations.reshape(2, -1))
    step = wrapped.step(np.zeros((2, 3, 1), dtype=np.float32))
    np.testing.assert_allclose(
        step.observations[:, 0, :11],
        (env.global_states() - normalizer.obs_mean) / normalizer.obs_std,
        atol=1e-4,
    )
    assert wrapped.spec == env.spec and wrapped.num_envs == 2
    wrapped.close()


def hopper_run(out_dir, *overrides: str) -> list[str]:
    """``python -m omiga_pl.fit`` arguments: 4 updates of the default MaMuJoCo config on
    the bundled medium file, into ``out_dir``."""
    config = ["--config", str(ROOT / "conf" / "mamujoco.yaml"), f"data.path={HOPPER}"]
    return [*config, "trainer.max_steps=4", f"log.out_dir={out_dir}", *QUIET, *overrides]


def test_cli_reports_the_map_and_refuses_a_bad_value(tmp_path, capsys):
    common = hopper_run(tmp_path, "eval.enabled=false")
    assert main([*common, "log.run_name=std"]) == 0
    assert "observations standardize (reference_decoded)" in capsys.readouterr().out
    assert main([*common, "log.run_name=bad", "data.obs_normalization=zscore"]) == 2
    err = capsys.readouterr().err
    assert "'data.obs_normalization': expected one of ['auto', 'none', 'standardize'], found 'zscore'" in err
    assert not (tmp_path / "bad").exists()


def test_seed_ensemble_trains_and_evaluates_on_standardised_observations(tmp_path, capsys):
    args = hopper_run(
        tmp_path,
        "seeds=[0,1]",
        "eval.every=4",
        "eval.episodes=1",
        "eval.final_episodes=1",
        "log.run_name=ens",
    )
    assert main(args) == 0
    assert "observations standardize (reference_decoded)" in capsys.readouterr().out
    for seed in (0, 1):
        assert (tmp_path / "ens" / f"seed_{seed}" / "final_eval.json").is_file()
