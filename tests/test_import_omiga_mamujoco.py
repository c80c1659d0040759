"""The OMIGA reference MaMuJoCo HDF5 importer, on small files written in the reference layout."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from omiga_pl.data.formats.native import read_native, write_native
from omiga_pl.data.formats.omiga_mamujoco import import_omiga_mamujoco, recover_episodes
from omiga_pl.data.storage import TransitionStorage
from omiga_pl.envs.mamujoco import reference_observations
from omiga_pl.errors import DatasetError
from omiga_pl.fit import main

ROOT = Path(__file__).resolve().parent.parent


def write_reference_file(
    path: Path, lengths: list[int], n_agents: int, global_dim: int, act_dim: int, seed=0
):
    """Reference layout: per episode L step rows (d = 0) and one final row (d = 1)."""
    rng = np.random.default_rng(seed)
    rows = sum(lengths) + len(lengths)
    g = rng.standard_normal((rows, global_dim))
    o = reference_observations(g, n_agents)
    d = np.zeros((rows, 1), dtype=np.float32)
    d[np.cumsum(np.asarray(lengths) + 1) - 1] = 1.0
    with h5py.File(path, "w") as handle:
        handle["o"] = o.astype(np.float64)  # the reference stores float64
        handle["s"] = o.astype(np.float64)
        handle["a"] = rng.uniform(-1, 1, (rows, n_agents, act_dim))
        handle["r"] = rng.random((rows, 1))
        handle["d"] = d
    return o, d


def test_recover_episodes_rules():
    # rows: [0 0 1] [1] (empty) [0 0 0 1] [0 0] (cut-off tail)
    done = np.array([0, 0, 1, 1, 0, 0, 0, 1, 0, 0], dtype=bool)
    found = recover_episodes(done, episode_limit=3)
    assert found["lengths"].tolist() == [2, 3, 1]
    assert found["truncated"].tolist() == [False, True, True]
    assert found["step_rows"].tolist() == [0, 1, 4, 5, 6, 8]
    assert found["obs_rows"].tolist() == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert found["empty_episodes"] == 1


def test_import_hopper_time_limit_and_termination(tmp_path):
    path = tmp_path / "Hopper-v2-3x1-medium.hdf5"
    # Episode 0 terminates after 5 steps; episode 1 hits the (test-sized) limit of 8.
    o, _ = write_reference_file(path, [5, 8], n_agents=3, global_dim=11, act_dim=1)
    data, card = import_omiga_mamujoco(path, episode_limit=8)
    assert card["scenario"] == "Hopper-3x1" and card["quality"] == "medium"
    assert card["obs_mode"] == "reference" and card["source_rows"] == 15
    assert "evaluation_refused" not in card and "same layout" in card["evaluation_note"]
    assert data.episode_lengths.tolist() == [5, 8]
    assert data.terminations.nonzero()[0].tolist() == [4]
    assert data.truncations.nonzero()[0].tolist() == [12]
    assert data.states is None  # s == o: the mixer sees their concatenation, as the reference
    np.testing.assert_array_equal(data.observations, o)  # native rows = reference rows
    with h5py.File(path) as handle:
        r = handle["r"][()][:, 0]
        np.testing.assert_allclose(data.episode_returns(), [r[:5].sum(), r[6:14].sum()], rtol=1e-6)
        with_done = [r[:6].sum(), r[6:15].sum()]
        assert card["source_return_mean_with_done_rows"] == pytest.approx(np.mean(with_done), rel=1e-6)
    out = tmp_path / "native.h5"
    full = write_native(out, data, card)
    assert full["n_episodes"] == 2 and full["n_transitions"] == 13
    storage = TransitionStorage(read_native(out)[0])
    masks = storage.masks.numpy()
    assert masks[4] == 0 and masks[12] == 1 and masks.sum() == 12  # only the true terminal masked
    assert storage.dims.state_dim == 3 * 14


def test_import_ant_v2_trains_but_refuses_evaluation(tmp_path, capsys):
    path = tmp_path / "Ant-v2-2x4-expert.hdf5"
    write_reference_file(path, [6, 4, 7], n_agents=2, global_dim=111, act_dim=4)
    data, card = import_omiga_mamujoco(path)
    assert data.dims.obs_dim == 113 and "cannot be produced online" in card["evaluation_refused"]
    native = tmp_path / "ant.h5"
    write_native(native, data, card)
    common = [
        "--config",
        str(ROOT / "conf" / "mamujoco.yaml"),
        f"data.path={native}",
        f"log.out_dir={tmp_path / 'runs'}",
        "trainer.enable_progress_bar=false",
        "trainer.max_steps=3",
        "env.scenario=Ant-2x4",
    ]
    assert main(common) == 2
    err = capsys.readouterr().err.strip()
    assert "evaluation refused" in err and "eval.enabled=false" in err and len(err.splitlines()) == 1
    assert main([*common, "eval.enabled=false"]) == 0


def test_import_errors_are_one_line(tmp_path):
    path = tmp_path / "Hopper-v2-3x1-expert.hdf5"
    with h5py.File(path, "w") as handle:
        handle["o"] = np.zeros((4, 3, 14))
    with pytest.raises(DatasetError, match=r"field 's': missing"):
        import_omiga_mamujoco(path)
    wrong = tmp_path / "Hopper-v2-3x1-poor.hdf5"
    write_reference_file(wrong, [3, 3], n_agents=3, global_dim=20, act_dim=1)
    with pytest.raises(DatasetError, match=r"field 'o': observation size .* expected 14 .* found 23"):
        import_omiga_mamujoco(wrong)
    with pytest.raises(DatasetError, match="file not found"):
        import_omiga_mamujoco(tmp_path / "none.hdf5")
