"""The one loop that steps episodes: evaluation, dataset generation and behaviour scoring.

:func:`rollout` resets every slot of a :class:`~omiga_pl.envs.base.VecMultiAgentEnv` with
one seed and steps them together, asking a policy for every slot's actions at every step
(finished slots too: the env ignores them, and a policy that draws random numbers then
draws the same amount whatever the episodes do). It returns per-episode statistics and,
when asked, the whole time-major trajectory, which :func:`episode_rows` turns into
native-format rows (every episode back to back, its final observation included).

NumPy only, so dataset generation does not pay for importing torch.

Shapes: T = steps of the longest counted episode, E = ``env.num_envs``, N = agents,
O / S / A = observation / state / action sizes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from omiga_pl.envs.base import StepResult, VecMultiAgentEnv

# Actions [E, N] (discrete) or [E, N, A] (continuous) for the state the env is in.
Policy = Callable[[StepResult], np.ndarray]
# Extra per-slot arrays [E, ...] to record after reset and after every step.
Extras = Callable[[], dict[str, np.ndarray]]


@dataclass
class Trajectory:
    """Everything a rollout saw, time-major, every slot (rows after a slot's end repeat
    its frozen last state and are dropped by :func:`episode_rows`).

    observations [T+1, E, N, O]; states [T+1, E, S]; avail_actions [T+1, E, N, A] or
    None; actions [T, E, N] or [T, E, N, A] as the policy returned them; rewards /
    terminated / truncated [T, E]; extras: name -> [T+1, E, ...].
    """

    observations: np.ndarray
    states: np.ndarray
    avail_actions: np.ndarray | None
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    extras: dict[str, np.ndarray]


@dataclass
class EpisodeStats:
    """Per-episode results of one rollout: returns [E] float64, lengths [E] int64, won [E]
    bool (None for environments without a win signal); the trajectory when recorded."""

    returns: np.ndarray
    lengths: np.ndarray
    won: np.ndarray | None
    trajectory: Trajectory | None = None

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


class _Recorder:
    """Appends one row per reset/step; stacks them time-major at the end."""

    def __init__(self, result: StepResult, extras: Extras | None) -> None:
        self.extras = extras
        self.rows: dict[str, list[np.ndarray]] = {"observations": [], "states": [], "avail_actions": []}
        self.steps: dict[str, list[np.ndarray]] = {
            "actions": [],
            "rewards": [],
            "terminated": [],
            "truncated": [],
        }
        self.extra_rows: dict[str, list[np.ndarray]] = {}
        self._add_row(result)

    def _add_row(self, result: StepResult) -> None:
        self.rows["observations"].append(result.observations)
        self.rows["states"].append(result.states)
        self.rows["avail_actions"].append(result.avail_actions)
        for name, value in (self.extras() if self.extras else {}).items():
            self.extra_rows.setdefault(name, []).append(value)

    def add(self, actions: np.ndarray, result: StepResult) -> None:
        self.steps["actions"].append(actions)
        self.steps["rewards"].append(result.rewards)
        self.steps["terminated"].append(result.terminated)
        self.steps["truncated"].append(result.truncated)
        self._add_row(result)

    def trajectory(self) -> Trajectory:
        avail = self.rows["avail_actions"]
        return Trajectory(
            observations=np.stack(self.rows["observations"]),
            states=np.stack(self.rows["states"]),
            avail_actions=None if avail[0] is None else np.stack(avail),
            **{name: np.stack(values) for name, values in self.steps.items()},
            extras={name: np.stack(values) for name, values in self.extra_rows.items()},
        )


def rollout(
    env: VecMultiAgentEnv,
    policy: Policy,
    seed: int,
    *,
    record: bool = False,
    extras: Extras | None = None,
    slots: int | None = None,
) -> EpisodeStats:
    """One episode in each of the env's E slots, reset with ``seed``, actions from ``policy``.

    Args:
        env: the vectorised env (its slots are reset here).
        policy: ``policy(result) -> actions`` for every slot, given the last StepResult.
        seed: the reset seed.
        record: keep the whole :class:`Trajectory` (in ``EpisodeStats.trajectory``).
        extras: with ``record``, more per-slot arrays to record after reset and every
            step (e.g. MaMuJoCo's global states and local observations).
        slots: stop once the first ``slots`` episodes are over (default: all E); the
            others may be unfinished and must not be used.

    Raises RuntimeError if an episode outlives the env's episode limit.
    """
    result = env.reset(seed)
    n = env.num_envs
    counted = n if slots is None else slots
    returns = np.zeros(n, dtype=np.float64)
    lengths = np.zeros(n, dtype=np.int64)
    live = np.ones(n, dtype=bool)
    recorder = _Recorder(result, extras) if record else None
    for _ in range(env.spec.episode_limit + 1):
        actions = policy(result)
        result = env.step(actions)
        returns += np.where(live, result.rewards, 0.0)
        lengths += live
        live &= ~result.done
        if recorder is not None:
            recorder.add(actions, result)
        if not live[:counted].any():
            break
    else:
        raise RuntimeError(f"{env.spec.family}/{env.spec.scenario}: episodes exceeded the episode limit")
    return EpisodeStats(
        returns=returns,
        lengths=lengths,
        won=result.won.copy() if env.spec.has_win_signal else None,
        trajectory=None if recorder is None else recorder.trajectory(),
    )


def episode_rows(stats: EpisodeStats, keep: int) -> dict[str, np.ndarray]:
    """The first ``keep`` episodes of a recorded rollout as native-format rows, back to back.

    Returns observations [R, N, O], states [R, S], avail_actions [R, N, A] (if recorded)
    and every extra [R, ...] over R = sum(L + 1) rows; actions [T', ...], rewards,
    terminations, truncations [T'] over T' = sum(L) steps; episode_lengths [keep];
    episode_won [keep] (if the env has a win signal).
    """
    traj = stats.trajectory
    if traj is None:
        raise ValueError("episode_rows: the rollout was not recorded (pass record=True)")
    lengths = stats.lengths[:keep]
    t = np.arange(traj.observations.shape[0])[:, None]
    row_mask = (t <= lengths[None, :]).T  # [keep, T+1]: observation rows incl. the final one
    step_mask = (t[:-1] < lengths[None, :]).T  # [keep, T]: transitions

    def take(array: np.ndarray, mask: np.ndarray) -> np.ndarray:
        # Slot-major so each episode's rows are contiguous, in slot order.
        return np.swapaxes(array[:, :keep], 0, 1)[mask]

    rows = {"observations": traj.observations, "states": traj.states, **traj.extras}
    if traj.avail_actions is not None:
        rows["avail_actions"] = traj.avail_actions
    out = {name: take(array, row_mask) for name, array in rows.items()}
    steps = {
        "actions": traj.actions,
        "rewards": traj.rewards,
        "terminations": traj.terminated,
        "truncations": traj.truncated,
    }
    out.update({name: take(array, step_mask) for name, array in steps.items()})
    out["episode_lengths"] = lengths
    if stats.won is not None:
        out["episode_won"] = stats.won[:keep]
    return out
