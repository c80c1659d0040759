"""OG-MARL vaults (written by flashbax itself) -> native: values, no JAX, bad vaults."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import source_hashes

from omiga_pl.data.datamodule import OfflineMARLDataModule
from omiga_pl.data.formats.native import read_native, write_native
from omiga_pl.data.formats.og_marl import import_og_marl_vault
from omiga_pl.errors import DatasetError

pytest.importorskip("flashbax")
pytest.importorskip("tensorstore")

from omiga_pl.data.formats.synthetic import write_og_marl_vault

LENGTHS = [5, 3, 7, 4]


@pytest.fixture(scope="module")
def vaults(tmp_path_factory):
    """One good vault (episode 1 truncated, 2 unfinished trailing steps) and bad ones."""
    root = tmp_path_factory.mktemp("vaults") / "smac_v1"
    root.mkdir()
    good = write_og_marl_vault(root, LENGTHS, truncated=(1,), trailing_steps=2)

    def nan_obs(experience):
        experience["observations"][6, 1, 4] = np.nan

    def extra_agent(experience):
        legals = experience["infos"]["legals"]
        experience["infos"]["legals"] = np.concatenate([legals, legals[:, :1]], axis=1)

    bad = tmp_path_factory.mktemp("bad")
    made = {
        "no_truncations": write_og_marl_vault(
            bad / "a", LENGTHS, leaves=("observations", "actions", "rewards", "terminals", "infos")
        ),
        "nan": write_og_marl_vault(bad / "b", LENGTHS, mutate=nan_obs),
        "agents": write_og_marl_vault(bad / "c", LENGTHS, mutate=extra_agent),
    }
    return good, {k: v["vault"] for k, v in made.items()}


def test_values_episodes_and_card(vaults):
    good, _ = vaults
    data, card = import_og_marl_vault(good["vault"])
    assert data.episode_lengths.tolist() == LENGTHS
    starts = np.concatenate([[0], np.cumsum(LENGTHS)[:-1]])
    for e, (start, length) in enumerate(zip(starts, LENGTHS)):
        row = start + e
        np.testing.assert_array_equal(
            data.observations[row : row + length], good["observations"][start : start + length]
        )
        np.testing.assert_array_equal(
            data.observations[row + length], good["observations"][start + length - 1]
        )
        np.testing.assert_array_equal(data.states[row : row + length], good["state"][start : start + length])
        np.testing.assert_array_equal(
            data.avail_actions[row : row + length], good["legals"][start : start + length]
        )
    n = sum(LENGTHS)
    np.testing.assert_array_equal(data.actions, good["actions"][:n])
    np.testing.assert_array_equal(data.rewards, good["rewards"][:n, 0])
    ends = np.cumsum(LENGTHS) - 1
    assert np.flatnonzero(data.truncations).tolist() == [ends[1]]
    assert np.flatnonzero(data.terminations).tolist() == [ends[0], ends[2], ends[3]]
    assert card["env_family"] == "smac_v1" and card["scenario"] == "3m" and card["quality"] == "good"
    assert "dropped 2 step(s)" in card["derived"]["episodes"]
    assert "1 episode(s)" in card["derived"]["truncations"]


def test_parent_of_a_single_vault_is_accepted(vaults):
    good, _ = vaults
    data, _ = import_og_marl_vault(good["vault"].parent)
    assert data.n_episodes == len(LENGTHS)


def test_reading_needs_no_jax(vaults):
    good, _ = vaults
    code = (
        "import sys; from omiga_pl.data.formats.og_marl import import_og_marl_vault; "
        f"d, _ = import_og_marl_vault({str(good['vault'])!r}); "
        "assert 'jax' not in sys.modules and 'flashbax' not in sys.modules; print(d.n_episodes)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(len(LENGTHS))


def test_round_trip_into_a_batch_leaves_the_vault_untouched(vaults, tmp_path):
    good, _ = vaults
    before = source_hashes(good["vault"])
    data, card = import_og_marl_vault(good["vault"])
    path = tmp_path / "vault.h5"
    write_native(path, data, card)
    loaded, _ = read_native(path)
    np.testing.assert_array_equal(loaded.states, data.states)
    module = OfflineMARLDataModule(path, batch_size=4, storage_on_device=False)
    storage = module.load()
    batch = module.on_after_batch_transfer(torch.arange(storage.n_transitions), 0)
    ends = np.cumsum(LENGTHS) - 1
    assert batch.masks[ends[1]] == 1.0  # truncated: bootstraps
    assert batch.masks[ends[0]] == 0.0
    assert batch.next_avail_actions.shape == (sum(LENGTHS), 3, 8)
    assert source_hashes(good["vault"]) == before


def test_vault_missing_an_array(vaults):
    _, bad = vaults
    with pytest.raises(
        DatasetError, match=r"field 'truncations': missing from the vault \(metadata\.json lists"
    ):
        import_og_marl_vault(bad["no_truncations"])


def test_array_listed_but_not_stored(vaults, tmp_path):
    _, bad = vaults
    vault = tmp_path / "Good"
    shutil.copytree(bad["no_truncations"], vault)
    meta = json.loads((vault / "metadata.json").read_text())
    meta["structure_shape"]["truncations"] = meta["structure_shape"]["terminals"]
    meta["structure_dtype"]["truncations"] = "float32"
    (vault / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(
        DatasetError, match=r"field 'truncations': array cannot be opened \(missing or corrupt\)"
    ):
        import_og_marl_vault(vault)


def test_nan_and_inconsistent_agent_counts(vaults):
    _, bad = vaults
    with pytest.raises(
        DatasetError, match=r"field 'observations': expected finite values, found nan at \[6, 1, 4\]"
    ):
        import_og_marl_vault(bad["nan"])
    with pytest.raises(
        DatasetError,
        match=r"field 'infos\.legals': inconsistent agent counts: observations has 3 agents, .* 4",
    ):
        import_og_marl_vault(bad["agents"])


def test_corrupt_metadata_empty_and_ambiguous_directories(vaults, tmp_path):
    good, _ = vaults
    vault = tmp_path / "Good"
    shutil.copytree(good["vault"], vault)
    (vault / "metadata.json").write_text("{not json")
    with pytest.raises(DatasetError, match=r"metadata\.json: not valid vault metadata"):
        import_og_marl_vault(vault)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="empty directory"):
        import_og_marl_vault(empty)
    both = tmp_path / "3m.vlt"
    shutil.copytree(good["vault"], both / "Good")
    shutil.copytree(good["vault"], both / "Poor")
    with pytest.raises(DatasetError, match=r"holds 2 vaults \['Good', 'Poor'\]: pass one of them"):
        import_og_marl_vault(both)


def test_corrupt_chunks_fail_clearly(vaults, tmp_path):
    good, _ = vaults
    vault = tmp_path / "Good"
    shutil.copytree(good["vault"], vault)
    for chunk in (vault / "d").iterdir():
        chunk.write_bytes(b"\0" * 16)
    with pytest.raises(DatasetError, match=str(vault)):
        import_og_marl_vault(vault)
