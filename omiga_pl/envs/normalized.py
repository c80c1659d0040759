"""An evaluation env whose observations and states are normalised as the training data was."""

from __future__ import annotations

import dataclasses

import numpy as np

from omiga_pl.data.obs_norm import ObservationNormalizer
from omiga_pl.envs.base import StepResult, VecMultiAgentEnv


class NormalizedObservations:
    """``env`` with :class:`ObservationNormalizer` applied to every reset and step result
    (observations [E, N, O] and states [E, S]; everything else passes through), so a policy
    trained on normalised data acts on what it was trained on (CORL's ``wrap_env``)."""

    def __init__(self, env: VecMultiAgentEnv, normalizer: ObservationNormalizer) -> None:
        self.env, self.normalizer = env, normalizer
        self.spec, self.num_envs = env.spec, env.num_envs

    def _normalized(self, result: StepResult) -> StepResult:
        return dataclasses.replace(
            result,
            observations=self.normalizer.observations(result.observations),
            states=self.normalizer.states(result.states),
        )

    def reset(self, seed: int) -> StepResult:
        return self._normalized(self.env.reset(seed))

    def step(self, actions: np.ndarray) -> StepResult:
        return self._normalized(self.env.step(actions))

    def close(self) -> None:
        self.env.close()
