"""Roll a torch policy out in a vectorised env and summarise the episodes.

The loop itself is :func:`omiga_pl.rollout.rollout` (shared with dataset generation and
behaviour scoring); this module adapts a policy that acts on tensors to it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from omiga_pl.envs.base import StepResult, VecMultiAgentEnv
from omiga_pl.rollout import EpisodeStats, rollout

__all__ = ["ActFn", "EpisodeStats", "run_episodes"]

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
