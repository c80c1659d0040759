"""OMIGA-local: the ablation that shows what OMIGA's global-to-local step buys.

OMIGA's three losses (losses/omiga.py) with the mixer replaced by fixed weights
``w_i = 1`` and bias ``b = 0``: ``Q_tot = sum_i Q_i``, ``y = r + gamma mask sum_i V'_i``
and ``z_i = (Qt_i - V_i) / alpha``. Each agent's value and policy are then regularised
in-sample independently of the others (no state-conditioned credit assignment); only
the Q regression still sees the team reward through the sum. Everything else (nets,
optimiser, targets, defaults) is OMIGA's. See docs/algorithms/omiga_local.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from omiga_pl.algos.base import BaseAlgoConfig, PolicyFitConfig, TargetConfig
from omiga_pl.algos.omiga import OmigaModule
from omiga_pl.data.batch import Batch


@dataclass
class OmigaLocalConfig(PolicyFitConfig, TargetConfig, BaseAlgoConfig):
    """OMIGA's keys without the mixer's."""

    name: str = "omiga_local"
    # Regularisation temperature, as OMIGA's.
    alpha: float = 10.0
    # Adam learning rates per parameter group: local Q, local V, policy.
    lr_q: float = 5e-4
    lr_v: float = 5e-4
    lr_policy: float = 5e-4
    # Upper bound on the policy's advantage weights exp(z), as OMIGA's; <= 0: none.
    policy_weight_cap: float = 0.0


class OmigaLocalModule(OmigaModule):
    """OMIGA with ``w = 1``, ``b = 0`` fixed: no mixer, no mixer target."""

    config_class = OmigaLocalConfig
    target_names = ("q", "v")

    def build_mixer(self) -> None:
        """No mixer: the weights are the constant 1."""

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {
            "q": list(self.q.parameters()),
            "v": list(self.v.parameters()),
            "policy": list(self.policy.parameters()),
        }

    def mix_weights(
        self, batch: Batch
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        ones = batch.rewards.new_ones(batch.batch_size, self.dims.n_agents)
        zeros = batch.rewards.new_zeros(batch.batch_size)
        return ones, zeros, ones, ones, zeros
