"""Roll a policy out in a vectorised env and summarise the episodes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from omiga_pl.envs.base import VecMultiAgentEnv

ActFn = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


@dataclass
class EpisodeStats:
    """Per-episode results of one evaluation: returns [E], lengths [E], won [E] (None
    for environments without a win signal)."""

    returns: np.ndarray
    lengths: np.ndarray
    won: np.ndarray | None

    def summary(self, reference_returns: tuple[float, float] | None = None) -> dict[str, float]:
        """Mean/std return, win rate, mean length; normalised score when references are known.

        ``reference_returns`` = (random, expert): score = 100 (R - random) / (expert - random).
        """
        out = {
            "return_mean": float(self.returns.mean()),
            "return_std": float(self.returns.std()),
            "episode_length_mean": float(self.lengths.mean()),
        }
        if self.won is not None:
            out["win_rate"] = float(self.won.mean())
        if reference_returns is not None:
            low, high = reference_returns
            out["normalized_score"] = 100.0 * (out["return_mean"] - low) / (high - low)
        return out


def run_episodes(
    env: VecMultiAgentEnv, act: ActFn, seed: int, device: torch.device | str = "cpu"
) -> EpisodeStats:
    """One episode in each of the env's slots, actions from ``act(obs, avail)``.

    ``act`` takes observations [E, N, O] and availabilities [E, N, A] (or None) as
    tensors on ``device`` and returns actions [E, N] (or [E, N, A]).
    """
    result = env.reset(seed)
    n = env.num_envs
    returns = np.zeros(n, dtype=np.float64)
    lengths = np.zeros(n, dtype=np.int64)
    live = np.ones(n, dtype=bool)
    for _ in range(env.spec.episode_limit + 1):
        obs = torch.as_tensor(result.observations, device=device)
        avail = None if result.avail_actions is None else torch.as_tensor(result.avail_actions, device=device)
        actions = act(obs, avail).cpu().numpy()
        result = env.step(actions)
        returns += np.where(live, result.rewards, 0.0)
        lengths += live
        live &= ~result.done
        if not live.any():
            break
    else:
        raise RuntimeError(f"{env.spec.family}/{env.spec.scenario}: episodes exceeded the episode limit")
    won = result.won.copy() if env.spec.has_win_signal else None
    return EpisodeStats(returns=returns, lengths=lengths, won=won)
