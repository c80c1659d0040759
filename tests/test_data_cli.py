"""``python -m omiga_pl.data`` end to end: inspect, validate, convert, detect, list, verify, register."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import make_episodes, source_hashes

from omiga_pl.data import registry
from omiga_pl.data.__main__ import main
from omiga_pl.data.formats.native import read_card, read_native, write_native
from omiga_pl.data.formats.synthetic import write_omar, write_smac_episodes

LENGTHS = [4, 6, 3, 5]


@pytest.fixture(scope="module")
def smac_dir(tmp_path_factory):
    """SMAC episodes with SMAX 3m sizes (3 agents, obs 75, 3 x 24 state, 8 actions)."""
    directory = tmp_path_factory.mktemp("cli") / "3m" / "good"
    write_smac_episodes(directory, LENGTHS)
    return directory


@pytest.fixture(autouse=True)
def private_registry(tmp_path, monkeypatch):
    monkeypatch.setenv(registry.REGISTRY_ENV, str(tmp_path / "reg" / "registry.yaml"))
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path / "cache"))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_convert_detects_writes_card_and_leaves_source_untouched(smac_dir, tmp_path, capsys):
    before = source_hashes(smac_dir)
    dst = tmp_path / "out.h5"
    code, out, err = run(capsys, "convert", smac_dir, dst, "--no-progress")
    assert code == 0, err
    assert "detected format: omiga-smac" in out and err == ""
    assert f"wrote {dst}: 4 episodes, 18 transitions, 3 agents, obs 75, state 72" in out
    assert "derived observations: each episode's final row repeats its last observation" in out
    card = read_card(dst)
    assert card["source_format"] == "omiga-smac" and card["command"].startswith(
        "python -m omiga_pl.data convert"
    )
    assert (tmp_path / "out.h5.md").read_text().count("sha256") == 1
    assert source_hashes(smac_dir) == before

    code, _, err = run(capsys, "convert", smac_dir, dst, "--no-progress")
    assert (
        code == 2
        and err.strip() == f"omiga_pl.data: error: {dst}: destination exists; pass --overwrite to replace it"
    )
    code, _, err = run(
        capsys, "convert", smac_dir, dst, "--overwrite", "--no-progress", "--quality", "relabelled"
    )
    assert code == 0, err
    assert read_card(dst)["quality"] == "relabelled"
    assert source_hashes(smac_dir) == before


def test_convert_refuses_a_destination_inside_the_source(smac_dir, capsys):
    code, _, err = run(capsys, "convert", smac_dir, smac_dir / "x.h5")
    assert code == 2 and "inside the source directory" in err
    assert not (smac_dir / "x.h5").exists()


def test_convert_with_explicit_format_and_options(tmp_path, capsys):
    src = tmp_path / "simple_spread" / "medium" / "seed_0_data"
    write_omar(src, n_episodes=3, episode_length=5)
    dst = tmp_path / "omar.h5"
    code, _out, err = run(
        capsys, "convert", src, dst, "--from", "omar-mpe", "--episode-length", "5", "--no-progress"
    )
    assert code == 0, err
    data, card = read_native(dst)
    assert data.episode_lengths.tolist() == [5, 5, 5] and card["scenario"] == "simple_spread"
    code, _, err = run(
        capsys, "convert", src, tmp_path / "b.h5", "--from", "omar-mpe", "--episode-limit", "5"
    )
    assert code == 2 and "--episode-limit: not an option of format 'omar-mpe'" in err
    code, _, err = run(capsys, "convert", src, tmp_path / "c.h5", "--from", "bogus")
    assert code == 2 and "--from: expected one of ['native'" in err


def test_inspect_native_and_source(smac_dir, tmp_path, capsys):
    code, out, _ = run(capsys, "inspect", smac_dir)
    assert code == 0
    assert "(omiga-smac)" in out and "agents       3   obs 75   state 72   actions discrete × 8" in out
    assert "episodes     4   transitions 18" in out
    assert "histogram over 4 episodes" in out and "#" in out
    native = tmp_path / "n.h5"
    write_native(native, make_episodes([3, 4, 5, 6, 7]), {"env_family": "smax", "scenario": "3m"})
    code, out, _ = run(capsys, "inspect", native, "--bins", "3")
    assert code == 0 and "(native)" in out and "win rate" in out
    assert len([line for line in out.splitlines() if line.startswith("  [")]) == 3


def test_validate_against_an_environment(smac_dir, tmp_path, capsys):
    code, out, err = run(capsys, "validate", smac_dir, "--env", "smax:3m")
    assert code == 0, err
    assert "warning: the card records smac/3m, validated against smax/3m" in out
    assert "OK:" in out and "matches smax/3m: 3 agents, obs 75" in out
    wrong = tmp_path / "wrong.h5"
    write_native(wrong, make_episodes([3, 4], obs_dim=80), {"env_family": "smax", "scenario": "3m"})
    code, _, err = run(capsys, "validate", wrong, "--env", "smax:3m")
    assert code == 2
    assert err.strip() == (
        f"omiga_pl.data: error: {wrong}: field 'observations': observation size does not match "
        "environment smax/3m: expected 75, found 80"
    )
    code, _, err = run(capsys, "validate", wrong, "--env", "smax")
    assert code == 2 and "--env: expected FAMILY:SCENARIO" in err


def test_detect(smac_dir, tmp_path, capsys):
    assert run(capsys, "detect", smac_dir)[1].startswith("omiga-smac:")
    code, _, err = run(capsys, "detect", smac_dir.parent)
    assert code == 2 and "holds several datasets ['good']" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "detect", tmp_path / "empty")
    assert code == 2 and "empty directory" in err
    (tmp_path / "bad.h5").write_bytes(b"not hdf5 at all")
    code, _, err = run(capsys, "detect", tmp_path / "bad.h5")
    assert code == 2 and "bad.h5: not an HDF5 file" in err


def test_register_list_verify(tmp_path, capsys):
    path = tmp_path / "runs" / "mine.h5"
    write_native(path, make_episodes([3, 3]), {"env_family": "smax", "scenario": "3m", "quality": "poor"})
    code, out, _ = run(capsys, "register", path, "--name", "mine")
    assert code == 0 and out.startswith("registered mine (generated)")
    code, out, _ = run(capsys, "list")
    assert code == 0 and "mine" in out and "smax:3m" in out and "poor" in out
    code, out, _ = run(capsys, "verify")
    assert code == 0 and out.startswith("ok          mine")
    code, out, _ = run(capsys, "inspect", "mine")
    assert code == 0 and "episodes     2" in out
    with open(path, "ab") as handle:
        handle.write(b"x")
    code, out, err = run(capsys, "verify")
    assert code == 2 and out.startswith("mismatch") and "1 dataset(s) failed verification" in err
    code, _, err = run(capsys, "verify", "nope")
    assert code == 2 and "no dataset named ['nope']" in err


def test_errors_are_one_line_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "omiga_pl.data", "inspect", str(tmp_path / "missing.h5")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert result.stderr.startswith("omiga_pl.data: error: ") and "missing.h5: not found" in result.stderr


def test_corrupt_native_file(tmp_path, capsys):
    path = tmp_path / "trunc.h5"
    write_native(path, make_episodes([3, 4]), {"env_family": "smax", "scenario": "3m"})
    path.write_bytes(path.read_bytes()[:2000])
    code, _, err = run(capsys, "inspect", path)
    assert code == 2 and "trunc.h5" in err and "truncated or corrupt" in err


def test_converted_file_equals_direct_import(smac_dir, tmp_path, capsys):
    from omiga_pl.data.formats.smac_episodes import import_smac_episodes

    dst = tmp_path / "x.h5"
    assert run(capsys, "convert", smac_dir, dst, "--no-progress", "--compression", "none")[0] == 0
    direct, _ = import_smac_episodes(smac_dir)
    converted, _ = read_native(dst)
    for field in ("observations", "states", "avail_actions", "actions", "rewards", "terminations"):
        np.testing.assert_array_equal(getattr(converted, field), getattr(direct, field))


def test_convert_omiga_mamujoco_through_the_shared_importer(tmp_path, capsys):
    pytest.importorskip("omiga_pl.data.formats.omiga_mamujoco")
    import h5py

    rng = np.random.default_rng(0)
    src = tmp_path / "Hopper-v2-3x1-expert.hdf5"
    rows = 3 * 11
    done = np.zeros((rows, 1))
    done[10::11] = 1
    obs = rng.standard_normal((rows, 3, 14)).astype(np.float32)
    with h5py.File(src, "w") as handle:
        handle["o"], handle["s"], handle["d"] = obs, obs, done
        handle["a"] = rng.uniform(-1, 1, (rows, 3, 1))
        handle["r"] = rng.random((rows, 1))
    before = source_hashes(tmp_path)
    code, out, err = run(capsys, "convert", src, tmp_path / "hop.h5", "--no-progress")
    assert code == 0, err
    assert "detected format: omiga-mamujoco" in out and "3 episodes, 30 transitions" in out
    assert {k: v for k, v in source_hashes(tmp_path).items() if k.startswith("Hopper")} == before


def test_failed_conversion_writes_nothing(smac_dir, tmp_path, capsys):
    import shutil

    src = tmp_path / "3m" / "good"
    shutil.copytree(smac_dir, src)
    (src / "2.pt").write_bytes(b"\x80\x02garbage")
    dst = tmp_path / "never.h5"
    code, _, err = run(capsys, "convert", src, dst, "--no-progress")
    assert code == 2 and "2.pt: cannot be unpickled" in err
    assert not dst.exists() and not list(tmp_path.glob(".never.h5*"))
