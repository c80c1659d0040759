"""Roll a torch policy out in a vectorised env and summarise the episodes.

The loop itself is :func:`omiga_pl.rollout.rollout` (shared with dataset generation and
behaviour scoring); this module adapts a policy that acts on tensors to it, and holds
the pieces that split an evaluation over DDP ranks: :func:`slots_per_rank`,
:func:`rank_chunks` and :class:`EpisodeMetrics` (a torchmetrics ``Metric`` that gathers
every rank's episodes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torchmetrics

from omiga_pl.envs.base import StepResult, VecMultiAgentEnv
from omiga_pl.rollout import EpisodeStats, rollout

__all__ = ["ActFn", "EpisodeMetrics", "EpisodeStats", "rank_chunks", "run_episodes", "slots_per_rank"]

ActFn = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


def run_episodes(
    env: VecMultiAgentEnv,
    act: ActFn,
    seed: int,
    device: torch.device | str = "cpu",
    slots: int | None = None,
) -> EpisodeStats:
    """One episode in each of the env's slots, actions from ``act(obs, avail)``.

    ``act`` takes observations [E, N, O] and availabilities [E, N, A] (or None) as
    tensors on ``device`` and returns actions [E, N] (or [E, N, A]). With ``slots``,
    the rollout stops once the first ``slots`` episodes are over (the rest are unfinished).
    """

    def policy(result: StepResult) -> np.ndarray:
        obs = torch.as_tensor(result.observations, device=device)
        avail = None if result.avail_actions is None else torch.as_tensor(result.avail_actions, device=device)
        return act(obs, avail).cpu().numpy()

    return rollout(env, policy, seed, slots=slots)


def slots_per_rank(episodes: int, world_size: int) -> int:
    """Env width w of every rank when ``episodes`` are split over ``world_size`` ranks."""
    return -(-int(episodes) // max(int(world_size), 1))


def rank_chunks(n_chunks: int, rank: int, world_size: int) -> list[int]:
    """The chunks (of an evaluation cut into ``n_chunks``) that ``rank`` runs: round-robin."""
    return list(range(rank, n_chunks, max(world_size, 1)))


class EpisodeMetrics(torchmetrics.Metric):
    """Every evaluated episode's return, length and win flag, gathered across DDP ranks.

    ``update(stats, chunk, width)`` adds one rollout's episodes (chunk ``chunk`` of
    width ``width``: episode j of it gets position ``chunk * width + j``);
    ``compute()`` syncs the states across processes (torchmetrics' ``cat`` reduction;
    nothing to sync in a single process) and returns the episodes of every rank in
    position order, as an :class:`EpisodeStats`, so the summary is identical to
    one process running the same chunks. Every rank must call ``compute`` (a collective).
    """

    full_state_update = False

    def __init__(self, has_win_signal: bool) -> None:
        super().__init__()
        self.has_win_signal = has_win_signal
        for name in ("position", "returns", "lengths", "won"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, stats: EpisodeStats, chunk: int, width: int) -> None:  # type: ignore[override]
        n = int(stats.returns.shape[0])
        device = self.device
        self.position.append(torch.arange(n, dtype=torch.int64, device=device) + chunk * width)
        self.returns.append(torch.as_tensor(stats.returns, dtype=torch.float64, device=device))
        self.lengths.append(torch.as_tensor(stats.lengths, dtype=torch.int64, device=device))
        won = np.zeros(n, dtype=bool) if stats.won is None else stats.won
        # uint8, not bool: gloo's all_gather does not take bool tensors.
        self.won.append(torch.as_tensor(won.astype(np.uint8), device=device))

    def empty(self) -> None:
        """Take part in a sync without episodes (a rank with no chunk this time)."""
        none = np.zeros(0)
        self.update(EpisodeStats(returns=none, lengths=none.astype(np.int64), won=None), chunk=0, width=0)

    def compute(self) -> EpisodeStats:  # type: ignore[override]
        def flat(state: Any) -> np.ndarray:
            tensor = torch.cat(state) if isinstance(state, list) else state
            return tensor.detach().cpu().numpy()

        order = np.argsort(flat(self.position), kind="stable")
        return EpisodeStats(
            returns=flat(self.returns)[order].astype(np.float64),
            lengths=flat(self.lengths)[order].astype(np.int64),
            won=flat(self.won)[order].astype(bool) if self.has_win_signal else None,
        )
