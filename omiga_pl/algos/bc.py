"""Behaviour cloning: the shared per-agent policy fitted to the dataset's actions.

One parameter group, ``policy``; no critic, no targets. ``loss: nll`` maximises the
likelihood of dataset actions under the same policy family OMIGA uses (categorical, or
the continuous family ``algo.policy``); ``loss: mse`` (continuous only) regresses the
policy's deterministic action on the dataset action, the classic deterministic BC.
See docs/algorithms/bc.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from omiga_pl.algos.base import BaseAlgoConfig, OfflineAlgorithm, PolicyFitConfig, check_choice
from omiga_pl.algos.omiga import build_policy_from
from omiga_pl.data.batch import Batch
from omiga_pl.errors import ConfigError
from omiga_pl.losses.bc import bc_mse_loss, bc_nll_loss
from omiga_pl.losses.common import NamedLosses


@dataclass
class BCConfig(PolicyFitConfig, BaseAlgoConfig):
    name: str = "bc"
    # Adam learning rate of the policy (OMIGA's policy rate, for a like-for-like baseline).
    lr_policy: float = 5e-4
    # "nll": maximum likelihood (both action types); "mse": squared error of tanh(mean)
    # against the dataset action (continuous only).
    loss: str = "nll"

    def validate(self) -> None:
        super().validate()
        check_choice("algo.loss", self.loss, ("nll", "mse"))


class BCModule(OfflineAlgorithm):
    """Behaviour cloning for discrete or continuous actions."""

    config_class = BCConfig
    cfg: BCConfig

    def build(self) -> None:
        if self.cfg.loss == "mse" and not self.continuous:
            raise ConfigError(
                "config: key 'algo.loss': 'mse' needs continuous actions, "
                "the dataset's are discrete; use 'nll'"
            )
        self.policy = build_policy_from(self.dims, self.cfg)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"policy": list(self.policy.parameters())}

    def compute_losses(self, batch: Batch) -> NamedLosses:
        if self.cfg.loss == "mse":
            return bc_mse_loss(self.policy.deterministic_action(batch.observations), batch.actions)
        avail = batch.avail_actions if self.cfg.mask_unavailable_in_training else None
        log_probs, entropy = self.policy.log_prob_and_entropy(batch.observations, batch.actions, avail)
        losses = bc_nll_loss(log_probs)
        losses.diagnostics["policy_entropy"] = entropy.detach().mean()
        return losses
