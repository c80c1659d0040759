"""OMIGA as a LightningModule: nets and wiring only; the maths is in losses/omiga.py.

One update = one forward of each network, one backward of the summed losses, per-group
gradient clipping, one Adam step (three parameter groups with their own learning
rates), then a Polyak update of the frozen target networks. ``trainer.global_step`` is
therefore the number of updates, and DDP sees a single backward per step.

The action type comes from the dataset (``ProblemDims.action_type``): discrete actions
get a local Q with one output per action (gathered at the dataset action) and a
categorical policy; continuous actions get a local Q that takes the agent's action as
input, ``Q_i(o_i, a_i)``, and a tanh-squashed Gaussian policy. Everything else (V,
mixer, targets, losses, optimisation) is shared.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from typing import Any

import lightning as L
import torch
from torch import nn

from omiga_pl.config import AlgoConfig
from omiga_pl.data.batch import Batch
from omiga_pl.errors import CheckpointError, ConfigError
from omiga_pl.losses.omiga import OmigaLosses, omiga_losses
from omiga_pl.nets import AgentMLP, CategoricalPolicy, Mixer, TanhGaussianPolicy


@dataclass(frozen=True)
class ProblemDims:
    """Sizes the networks are built for (taken from the dataset)."""

    n_agents: int
    obs_dim: int
    state_dim: int
    action_type: str
    action_dim: int


ACTION_TYPES = ("discrete", "continuous")


class OmigaModule(L.LightningModule):
    """OMIGA for discrete or continuous actions (chosen by ``dims["action_type"]``).

    Args:
        dims: problem sizes, a :class:`ProblemDims` as a dict.
        algo: an :class:`~omiga_pl.config.AlgoConfig` as a dict.
        log_every: write training scalars every this many updates.
    """

    def __init__(self, dims: dict[str, Any], algo: dict[str, Any], log_every: int = 100) -> None:
        super().__init__()
        self._param_cache: dict[str, Any] | None = None
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.dims = ProblemDims(**dims)
        self.cfg = AlgoConfig(**algo)
        self.log_every = log_every
        d, hidden = self.dims, list(self.cfg.hidden_sizes)
        if d.action_type not in ACTION_TYPES:
            raise ConfigError(
                f"algo: expected action type one of {list(ACTION_TYPES)}, found '{d.action_type}'"
            )
        self.continuous = d.action_type == "continuous"
        # Construction order (q, v, mixer, policy) fixes the initial weights for a seed.
        if self.continuous:
            self.q = AgentMLP(d.n_agents, d.obs_dim + d.action_dim, hidden, 1)
        else:
            self.q = AgentMLP(d.n_agents, d.obs_dim, hidden, d.action_dim)
        self.v = AgentMLP(d.n_agents, d.obs_dim, hidden, 1)
        self.mixer = Mixer(d.state_dim, d.n_agents, self.cfg.mixer_hidden)
        if self.continuous:
            self.policy = TanhGaussianPolicy(
                d.n_agents, d.obs_dim, d.action_dim, hidden, action_eps=self.cfg.action_eps
            )
        else:
            self.policy = CategoricalPolicy(d.n_agents, d.obs_dim, d.action_dim, hidden)
        # Targets are registered, frozen submodules: they live in the checkpoint.
        self.q_target = _frozen_copy(self.q)
        self.v_target = _frozen_copy(self.v)
        self.mixer_target = _frozen_copy(self.mixer)
        self.experiment_config: dict[str, Any] | None = None
        self._last_log_time: float | None = None
        self._last_log_step = 0

    # ----------------------------------------------------------------- optimisation
    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """The three parameter groups, in optimizer order."""
        return {
            "q": [*self.q.parameters(), *self.mixer.parameters()],
            "v": list(self.v.parameters()),
            "policy": list(self.policy.parameters()),
        }

    def _cached_params(self) -> dict[str, Any]:
        """Parameter lists used every update, built once: walking the module tree on every
        step cost ~5% of an update at these sizes. ``_apply`` (``.to()``, ``.cuda()``...)
        drops the cache in case parameters are replaced."""
        if self._param_cache is None:
            pairs = ((self.q_target, self.q), (self.v_target, self.v), (self.mixer_target, self.mixer))
            self._param_cache = {
                "groups": self.param_groups(),
                "targets": [p for target, _ in pairs for p in target.parameters()],
                "online": [p for _, net in pairs for p in net.parameters()],
            }
        return self._param_cache

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> OmigaModule:
        self._param_cache = None
        return super()._apply(fn, *args, **kwargs)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        lrs = {"q": self.cfg.lr_q, "v": self.cfg.lr_v, "policy": self.cfg.lr_policy}
        groups = [
            {"params": params, "lr": lrs[name], "name": name} for name, params in self.param_groups().items()
        ]
        impl = self.cfg.adam_impl
        return torch.optim.Adam(
            groups, foreach=True if impl == "foreach" else None, fused=True if impl == "fused" else None
        )

    def q_at_actions(self, q_net: nn.Module, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Local Q at the dataset actions: [B, N].

        Discrete: ``Q_i(o_i)`` [B, N, A] gathered at ``actions`` [B, N]. Continuous:
        ``Q_i(o_i, a_i)`` with ``actions`` [B, N, A] concatenated to the observation.
        """
        if self.continuous:
            return q_net(torch.cat([obs, actions.to(obs.dtype)], dim=-1)).squeeze(-1)
        return q_net(obs).gather(-1, actions.unsqueeze(-1)).squeeze(-1)

    def compute_losses(self, batch: Batch) -> OmigaLosses:
        """Forward every network once on ``batch`` and evaluate OMIGA's losses."""
        obs, actions = batch.observations, batch.actions
        batch_size = batch.batch_size
        q_taken = self.q_at_actions(self.q, obs, actions)
        weights, bias = self.mixer(batch.states)
        values = self.v(obs).squeeze(-1)
        train_avail = batch.avail_actions if self.cfg.mask_unavailable_in_training else None
        log_probs, entropy = self.policy.log_prob_and_entropy(obs, actions, train_avail)
        with torch.no_grad():
            q_target_taken = self.q_at_actions(self.q_target, obs, actions)
            # One mixer pass over s and s' together.
            both_w, both_b = self.mixer_target(torch.cat([batch.states, batch.next_states]))
            next_values_target = self.v_target(batch.next_observations).squeeze(-1)
        losses = omiga_losses(
            q_taken=q_taken,
            weights=weights,
            bias=bias,
            q_target_taken=q_target_taken,
            weights_target=both_w[:batch_size],
            values=values,
            next_values_target=next_values_target,
            next_weights_target=both_w[batch_size:],
            next_bias_target=both_b[batch_size:],
            log_probs=log_probs,
            rewards=batch.rewards,
            masks=batch.masks,
            alpha=self.cfg.alpha,
            gamma=self.cfg.gamma,
        )
        losses.diagnostics["policy_entropy"] = entropy.detach().mean()
        return losses

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        optimizer = self.optimizers()
        losses = self.compute_losses(batch)
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(losses.total)
        grad_norms = self.clip_per_group()
        optimizer.step()
        self.update_targets()
        if self.global_step % self.log_every == 0:
            self._log_training(losses, grad_norms)

    def clip_per_group(self) -> dict[str, torch.Tensor]:
        """Clip each parameter group's gradient norm to ``grad_clip``; return the norms."""
        norms = {}
        for name, params in self._cached_params()["groups"].items():
            grads = [p for p in params if p.grad is not None]
            max_norm = self.cfg.grad_clip if self.cfg.grad_clip > 0 else float("inf")
            norms[name] = torch.nn.utils.clip_grad_norm_(grads, max_norm, foreach=True)
        return norms

    @torch.no_grad()
    def update_targets(self) -> None:
        """Polyak averaging: target <- (1 - tau) target + tau online."""
        cache = self._cached_params()
        torch._foreach_lerp_(cache["targets"], cache["online"], self.cfg.tau)

    def _log_training(self, losses: OmigaLosses, grad_norms: dict[str, torch.Tensor]) -> None:
        now = time.perf_counter()
        metrics = {
            "train/q_loss": losses.q_loss.detach(),
            "train/v_loss": losses.v_loss.detach(),
            "train/policy_loss": losses.policy_loss.detach(),
            **{f"train/{key}": value for key, value in losses.diagnostics.items()},
            **{f"train/grad_norm_{key}": value for key, value in grad_norms.items()},
        }
        if self._last_log_time is not None:
            elapsed = now - self._last_log_time
            metrics["perf/updates_per_s"] = torch.tensor((self.global_step - self._last_log_step) / elapsed)
        self._last_log_time, self._last_log_step = now, self.global_step
        # Straight to the logger (rank 0 only), at the update count: Lightning's log_dict
        # would keep re-emitting on_step values and index them by batches seen.
        if self.logger is not None and self.trainer.is_global_zero:
            self.logger.log_metrics(
                {key: float(value) for key, value in metrics.items()}, step=self.global_step
            )

    def on_train_start(self) -> None:
        self._last_log_time, self._last_log_step = time.perf_counter(), self.global_step

    # ----------------------------------------------------------------------- acting
    @torch.no_grad()
    def act(self, observations: torch.Tensor, avail_actions: torch.Tensor | None = None) -> torch.Tensor:
        """Deterministic joint action for evaluation: [E, N, O] -> [E, N] (discrete,
        argmax over available actions) or [E, N, A] (continuous, ``tanh(mean)``)."""
        return self.policy.act(observations, avail_actions)

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.experiment_config is not None:
            checkpoint["omiga_pl_config"] = self.experiment_config

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("hyper_parameters", {}).get("dims")
        if saved is not None and saved != asdict(self.dims):
            raise CheckpointError(
                f"checkpoint: network sizes {saved} do not match this dataset's {asdict(self.dims)}; "
                "resume with the dataset the run started with"
            )


def _frozen_copy(net: nn.Module) -> nn.Module:
    return copy.deepcopy(net).requires_grad_(False)
