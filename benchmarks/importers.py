"""Load/convert speed of the importers against naive per-episode / per-step Python loops.

For each layout a synthetic dataset is written (sizes like the published ones), then
loaded (a) by the importer and (b) by a naive loop written the way reference code reads
it (per file, per agent, per step appends); both must give identical arrays. Prints
the median time of each and their ratio, plus the memory of the loaded dataset
against the raw size on disk.

    python benchmarks/importers.py                      # 1,000 episodes of each layout
    python benchmarks/importers.py --episodes 348 --repeats 3 --workers 4 --skip-vault
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from omiga_pl.data.formats import synthetic  # noqa: E402
from omiga_pl.data.formats.importing import final_row_index  # noqa: E402
from omiga_pl.data.formats.native import EpisodeDataset, read_native, write_native  # noqa: E402
from omiga_pl.data.formats.og_marl import import_og_marl_vault  # noqa: E402
from omiga_pl.data.formats.omar_mpe import import_omar  # noqa: E402
from omiga_pl.data.formats.smac_episodes import episode_files, import_smac_episodes  # noqa: E402


def naive_smac(src: Path) -> EpisodeDataset:
    """Reference-style loader: torch.load per file, then Python appends per agent and step."""
    import torch

    obs, states, avail, actions, rewards, lengths = [], [], [], [], [], []
    for path in episode_files(src):
        episode = torch.load(path, weights_only=False)
        steps = len(episode[0])
        ep_obs = [[None] * len(episode) for _ in range(steps)]
        ep_state = [[None] * len(episode) for _ in range(steps)]
        ep_avail = [[None] * len(episode) for _ in range(steps)]
        ep_act = [[0] * len(episode) for _ in range(steps)]
        ep_rew = [0.0] * steps
        for j, trajectory in enumerate(episode):
            for t, (s, o, a, r, _done, av) in enumerate(trajectory):
                ep_state[t][j] = np.asarray(s, dtype=np.float32)
                ep_obs[t][j] = np.asarray(o, dtype=np.float32)
                ep_avail[t][j] = np.asarray(av) > 0.5
                ep_act[t][j] = int(a[0])
                if j == 0:
                    ep_rew[t] = float(r[0])
        for t in range(steps):
            states.append(np.concatenate(ep_state[t]))
            obs.append(np.stack(ep_obs[t]))
            avail.append(np.stack(ep_avail[t]))
            actions.append(ep_act[t])
            rewards.append(ep_rew[t])
        lengths.append(steps)
    lengths_arr = np.asarray(lengths, dtype=np.int64)
    rows = final_row_index(lengths_arr)
    ends = np.cumsum(lengths_arr) - 1
    terminations = np.zeros(len(actions), dtype=bool)
    terminations[ends] = True
    return EpisodeDataset(
        observations=np.stack(obs)[rows],
        states=np.stack(states)[rows],
        avail_actions=np.stack(avail)[rows],
        actions=np.asarray(actions, dtype=np.int64),
        rewards=np.asarray(rewards, dtype=np.float32),
        terminations=terminations,
        truncations=np.zeros(len(actions), dtype=bool),
        episode_lengths=lengths_arr,
    )


def naive_omar(src: Path, n_agents: int) -> EpisodeDataset:
    """Per-step loop: walk the rows, start a new episode where next_obs breaks."""
    obs = [np.load(src / f"obs_{i}.npy") for i in range(n_agents)]
    nxt = [np.load(src / f"next_obs_{i}.npy") for i in range(n_agents)]
    acs = [np.load(src / f"acs_{i}.npy") for i in range(n_agents)]
    rews = np.load(src / "rews_0.npy")
    dones = np.load(src / "dones_0.npy")
    rows, actions, rewards, terms, truncs, lengths = [], [], [], [], [], []
    length = 0
    n_steps = obs[0].shape[0]
    for t in range(n_steps):
        rows.append(np.stack([o[t] for o in obs]))
        actions.append(np.stack([a[t] for a in acs]))
        rewards.append(rews[t])
        length += 1
        end = t == n_steps - 1 or dones[t] > 0.5 or any((n[t] != o[t + 1]).any() for n, o in zip(nxt, obs))
        terms.append(bool(dones[t] > 0.5))
        truncs.append(bool(end and dones[t] <= 0.5))
        if end:
            rows.append(np.stack([n[t] for n in nxt]))
            lengths.append(length)
            length = 0
    return EpisodeDataset(
        observations=np.stack(rows).astype(np.float32),
        actions=np.stack(actions).astype(np.float32),
        rewards=np.asarray(rewards, dtype=np.float32),
        terminations=np.asarray(terms),
        truncations=np.asarray(truncs),
        episode_lengths=np.asarray(lengths, dtype=np.int64),
    )


def naive_vault(vault: Path) -> dict[str, np.ndarray]:
    """What a user does with flashbax: Vault.read() (JAX arrays), then to NumPy."""
    from flashbax.vault import Vault

    v = Vault(vault_name=vault.parent.name, rel_dir=str(vault.parent.parent), vault_uid=vault.name)
    experience = v.read().experience
    return {k: np.asarray(x) for k, x in _leaves(experience)}


def _leaves(tree: dict, prefix: str = "") -> list:
    out = []
    for key, value in tree.items():
        out += _leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else [(prefix + key, value)]
    return out


def timed(function, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def nbytes(data: EpisodeDataset) -> int:
    return sum(a.nbytes for a in vars(data).values() if isinstance(a, np.ndarray))


def peak_memory(function) -> int:
    tracemalloc.start()
    function()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def same(a: EpisodeDataset, b: EpisodeDataset, fields: tuple[str, ...]) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in fields)


def bench_smac(tmp: Path, episodes: int, repeats: int, workers: int) -> None:
    rng = np.random.default_rng(0)
    lengths = [int(x) for x in rng.integers(20, 36, size=episodes)]
    src = tmp / "5m_vs_6m" / "good"
    start = time.perf_counter()
    synthetic.write_smac_episodes(src, lengths, n_agents=5, obs_dim=124, state_dim=156, n_actions=12)
    print(
        f"\n[omiga-smac] {episodes} episodes, {sum(lengths)} steps, 5 agents, obs 124, state 5x156, "
        f"12 actions (written in {time.perf_counter() - start:.1f}s)"
    )
    import torch

    t_naive, naive = timed(lambda: naive_smac(src), repeats)
    t_ours, (ours, _card) = timed(lambda: import_smac_episodes(src), repeats)
    t_trusted, _ = timed(lambda: import_smac_episodes(src, trust_pickle=True), repeats)
    t_workers, _ = timed(lambda: import_smac_episodes(src, workers=workers), repeats)
    t_floor, _ = timed(lambda: [torch.load(p, weights_only=False) for p in episode_files(src)], repeats)
    fields = (
        "observations",
        "states",
        "avail_actions",
        "actions",
        "rewards",
        "terminations",
        "episode_lengths",
    )
    print(f"  identical arrays: {same(naive, ours, fields)}")
    print(f"  naive per-step loop (torch.load, unrestricted): {t_naive:.2f}s")
    print(f"  import_smac_episodes (restricted unpickler):    {t_ours:.2f}s   ratio {t_naive / t_ours:.1f}x")
    print(
        f"  import_smac_episodes --trust-pickle:            {t_trusted:.2f}s   "
        f"ratio {t_naive / t_trusted:.1f}x"
    )
    print(
        f"  import_smac_episodes --workers {workers}:                {t_workers:.2f}s   "
        f"ratio {t_naive / t_workers:.1f}x"
    )
    print(
        f"  floor: torch.load of every file, nothing else: {t_floor:.2f}s "
        f"(importer overhead above it {t_ours / t_floor:.2f}x)"
    )
    t_read = _memory(src, ours, lambda: import_smac_episodes(src), tmp / "smac.h5")
    print(
        f"  after converting once, read_native of the native file: {t_read:.2f}s   "
        f"ratio {t_naive / t_read:.1f}x against the naive loop"
    )


def _memory(src: Path, data: EpisodeDataset, load, native: Path) -> float:
    """Print memory against raw size; return the time to read the converted native file."""
    raw = dir_bytes(src)
    write_native(native, data, {"env_family": "bench", "scenario": "bench"}, overwrite=True)
    t_read, _ = timed(lambda: read_native(native), 3)
    print(
        f"  memory: raw source {raw / 2**20:.1f} MiB, loaded arrays {nbytes(data) / 2**20:.1f} MiB "
        f"({nbytes(data) / raw:.2f}x raw), peak while importing {peak_memory(load) / 2**20:.1f} MiB; "
        f"native file {native.stat().st_size / 2**20:.1f} MiB (gzip), read_native {t_read:.2f}s"
    )
    return t_read


def bench_omar(tmp: Path, episodes: int, repeats: int) -> None:
    src = tmp / "simple_spread" / "expert" / "seed_0_data"
    synthetic.write_omar(src, episodes, episode_length=25, n_agents=3, obs_dim=18, act_dim=5)
    print(f"\n[omar-mpe] {episodes} episodes x 25 steps, 3 agents, obs 18, 5 continuous actions")
    t_naive, naive = timed(lambda: naive_omar(src, 3), repeats)
    t_ours, (ours, _card) = timed(lambda: import_omar(src), repeats)
    fields = ("observations", "actions", "rewards", "terminations", "truncations", "episode_lengths")
    print(f"  identical arrays: {same(naive, ours, fields)}")
    print(f"  naive per-step loop: {t_naive:.3f}s")
    print(f"  import_omar:         {t_ours:.3f}s   ratio {t_naive / t_ours:.1f}x")
    _memory(src, ours, lambda: import_omar(src), tmp / "omar.h5")


def bench_vault(tmp: Path, episodes: int, repeats: int) -> None:
    rng = np.random.default_rng(0)
    lengths = [int(x) for x in rng.integers(20, 36, size=episodes)]
    start = time.perf_counter()
    written = synthetic.write_og_marl_vault(
        tmp, lengths, vault_name="5m_vs_6m.vlt", n_agents=5, obs_dim=55, state_dim=98, n_actions=12
    )
    vault = written["vault"]
    print(
        f"\n[og-marl] {episodes} episodes, {sum(lengths)} steps, 5 agents, obs 55, state 98, 12 actions "
        f"(written by flashbax in {time.perf_counter() - start:.1f}s)"
    )
    t_ours, (ours, _card) = timed(lambda: import_og_marl_vault(vault), repeats)
    t_fbx, _ = timed(lambda: naive_vault(vault), repeats)
    print(f"  flashbax Vault.read() -> NumPy (needs JAX; no episode split): {t_fbx:.3f}s")
    print(
        f"  import_og_marl_vault (tensorstore, episodes assembled):       {t_ours:.3f}s   "
        f"ratio {t_fbx / t_ours:.1f}x"
    )
    _memory(vault, ours, lambda: import_og_marl_vault(vault), tmp / "vault.h5")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="processes for the parallel SMAC run")
    parser.add_argument("--skip-vault", action="store_true", help="skip the flashbax vault (needs JAX)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_smac(Path(tmp), args.episodes, args.repeats, args.workers)
        bench_omar(Path(tmp), args.episodes, args.repeats)
        if not args.skip_vault:
            bench_vault(Path(tmp), args.episodes, args.repeats)


if __name__ == "__main__":
    main()
