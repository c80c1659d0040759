"""In-memory transition storage: the whole dataset as contiguous tensors.

Observations, states and availabilities are kept once per *row* (T + E rows: every
episode's final observation included); a transition t points at its row r(t) and its
successor r(t) + 1, so next-step tensors cost no extra memory. Actions are stored per
transition; a transition's next action is that of transition t + 1 unless t ends its
episode (one flag per transition). A batch is gathered with one indexing op per field.
"""

from __future__ import annotations

import numpy as np
import torch

from omiga_pl.data.batch import Batch
from omiga_pl.data.formats.native import EpisodeDataset


def reward_to_go(rewards: np.ndarray, episode_lengths: np.ndarray) -> np.ndarray:
    """[T] undiscounted sum of rewards from each step to the end of its episode."""
    out = np.empty_like(rewards)
    start = 0
    for length in episode_lengths:  # per episode, vectorised inside: E is small
        end = start + int(length)
        out[start:end] = np.cumsum(rewards[start:end][::-1])[::-1]
        start = end
    return out


class TransitionStorage:
    """Tensors of one dataset plus the row index of every transition.

    dims: the dataset's :class:`~omiga_pl.dims.ProblemDims` (N, O, S, action type, A).
    rows [T] int64; observations [T+E, N, O]; states [T+E, S] (a view of the
    observations when the dataset has no global state); avail_actions [T+E, N, A] bool
    or None; actions [T, N] / [T, N, A]; rewards [T]; masks [T] = 1 - termination;
    episode_ends [T] bool, True at each episode's last transition.
    """

    def __init__(
        self, data: EpisodeDataset, use_reward_to_go: bool = False, reward_scale: float = 1.0
    ) -> None:
        self.dims = data.dims
        self.n_transitions = data.n_transitions
        self.rows = torch.from_numpy(data.transition_rows())
        self.observations = torch.from_numpy(np.ascontiguousarray(data.observations))
        if data.states is not None:
            self.states = torch.from_numpy(np.ascontiguousarray(data.states))
        else:
            self.states = self.observations.reshape(self.observations.shape[0], -1)
        self.avail_actions = None if data.avail_actions is None else torch.from_numpy(data.avail_actions)
        if self.dims.action_type == "discrete":
            self.actions = torch.from_numpy(data.actions.astype(np.int64, copy=False))
        else:
            self.actions = torch.from_numpy(data.actions.astype(np.float32, copy=False))
        rewards = data.rewards.astype(np.float32, copy=False)
        if use_reward_to_go:
            rewards = reward_to_go(rewards, data.episode_lengths)
        if reward_scale != 1.0:  # a new array: the dataset's own stays as read
            rewards = rewards * np.float32(reward_scale)
        self.rewards = torch.from_numpy(rewards)
        self.masks = torch.from_numpy((~data.terminations).astype(np.float32))
        episode_ends = np.zeros(self.n_transitions, dtype=bool)
        episode_ends[np.cumsum(data.episode_lengths) - 1] = True
        self.episode_ends = torch.from_numpy(episode_ends)

    @property
    def device(self) -> torch.device:
        return self.observations.device

    def to(self, device: torch.device | str) -> TransitionStorage:
        """Move every tensor to ``device`` in place; returns self."""
        for name, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                setattr(self, name, value.to(device))
        return self

    def nbytes(self) -> int:
        """Bytes held by the storage's own tensors (views counted once)."""
        seen, total = set(), 0
        for value in vars(self).values():
            if isinstance(value, torch.Tensor):
                storage = value.untyped_storage()
                if storage.data_ptr() not in seen:
                    seen.add(storage.data_ptr())
                    total += storage.nbytes()
        return total

    def gather(self, indices: torch.Tensor) -> Batch:
        """The batch of transitions ``indices`` [B] (int64, on the storage's device)."""
        row = self.rows[indices]
        next_row = row + 1
        # The successor transition in the same episode; an episode's last transition has
        # none (no action is stored at the final row) and keeps its own action.
        next_transition = indices + (~self.episode_ends[indices]).long()
        avail = self.avail_actions
        return Batch(
            observations=self.observations[row].float(),
            states=self.states[row].float(),
            actions=self.actions[indices],
            rewards=self.rewards[indices],
            masks=self.masks[indices],
            next_observations=self.observations[next_row].float(),
            next_states=self.states[next_row].float(),
            avail_actions=None if avail is None else avail[row],
            next_avail_actions=None if avail is None else avail[next_row],
            next_actions=self.actions[next_transition],
        )
