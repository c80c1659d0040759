"""Policies: log-probabilities of dataset actions for training, greedy actions for acting."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from omiga_pl.nets.agent import AgentMLP, apply_flat, hidden_stack, with_agent_ids

# The reference masks unavailable actions by setting their logits to -1e8.
MASKED_LOGIT = -1e8


class CategoricalPolicy(nn.Module):
    """Shared per-agent categorical policy over ``n_actions`` logits.

    logits: observations [B, N, O] -> [B, N, A].
    """

    def __init__(self, n_agents: int, obs_dim: int, n_actions: int, hidden_sizes: Sequence[int]) -> None:
        super().__init__()
        self.logits_net = AgentMLP(n_agents, obs_dim, hidden_sizes, n_actions)

    def logits(self, observations: torch.Tensor, avail_actions: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.logits_net(observations)
        if avail_actions is not None:
            logits = logits.masked_fill(~avail_actions, MASKED_LOGIT)
        return logits

    def log_prob_and_entropy(
        self, observations: torch.Tensor, actions: torch.Tensor, avail_actions: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """log pi(a | o) of ``actions`` [B, N] and the policy entropy, both [B, N]."""
        log_probs = torch.log_softmax(self.logits(observations, avail_actions).float(), dim=-1)
        taken = log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        return taken, entropy

    @torch.no_grad()
    def act(self, observations: torch.Tensor, avail_actions: torch.Tensor | None = None) -> torch.Tensor:
        """Greedy action over available actions: [B, N] int64."""
        return self.logits(observations, avail_actions).argmax(-1)


# Tanh-squashed Gaussian constants of the reference (omiga-spec.md, "Policy").
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
MEAN_CLAMP = 9.0
# Dataset actions are clipped to (-1 + eps, 1 - eps) before atanh so that a saturated
# action (exactly +-1) still has a finite log-probability.
ACTION_EPS = 1e-7
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def tanh_log_det_jacobian(pre_tanh: torch.Tensor) -> torch.Tensor:
    """``log(1 - tanh(u)^2)`` elementwise, in the stable form ``2 (log 2 - u - softplus(-2u))``."""
    return 2.0 * (math.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))


def tanh_gaussian_log_prob(
    mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor, eps: float = ACTION_EPS
) -> torch.Tensor:
    """log-density of squashed actions under ``tanh(Normal(mean, exp(log_std)))``.

    ``mean``, ``log_std``, ``actions``: [..., A] -> [...] (summed over action dims).
    Actions are clipped to (-1 + eps, 1 - eps), inverted with atanh, and the Gaussian
    log-density of the pre-image is corrected by the tanh Jacobian.
    """
    clipped = actions.clamp(-1.0 + eps, 1.0 - eps)
    pre_tanh = torch.atanh(clipped)
    normal = -0.5 * ((pre_tanh - mean) * torch.exp(-log_std)) ** 2 - log_std - _HALF_LOG_2PI
    return (normal - tanh_log_det_jacobian(pre_tanh)).sum(-1)


def tanh_gaussian_sample(
    mean: torch.Tensor, log_std: torch.Tensor, noise: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reparameterised sample of ``tanh(Normal(mean, exp(log_std)))`` and its log-density.

    ``mean``, ``log_std``: [..., A]; ``noise``: standard normal, [..., A] or with extra
    leading sample dims [K, ..., A] (the caller draws it, from its own generator, so that
    sampling is reproducible). Returns actions like ``noise`` and log-probs without the
    last dim. The log-density is computed from the pre-tanh value (no atanh round trip);
    gradients flow to ``mean`` and ``log_std``.
    """
    pre_tanh = mean + log_std.exp() * noise
    normal = -0.5 * noise**2 - log_std - _HALF_LOG_2PI
    return torch.tanh(pre_tanh), (normal - tanh_log_det_jacobian(pre_tanh)).sum(-1)


# Continuous policy families (``algo.policy``) and log-std parameterisations (``algo.policy_log_std``).
POLICY_KINDS = ("tanh_gaussian", "gaussian_tanh_mean")
LOG_STD_KINDS = ("state", "param")


def gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log-density of ``actions`` under ``Normal(mean, exp(log_std))``: [..., A] -> [...].

    No squashing and no clipping: a saturated action (exactly +-1) is an ordinary point.
    """
    normal = -0.5 * ((actions - mean) * torch.exp(-log_std)) ** 2 - log_std - _HALF_LOG_2PI
    return normal.sum(-1)


class _GaussianHeads(nn.Module):
    """Shared per-agent trunk MLP (one-hot id appended), a mean head and a log-std that is
    either a second head (``log_std="state"``) or one learned vector (``"param"``).

    Construction order (trunk, mean head, log-std head) is the reference's, so a seed gives
    the reference's initial weights; the ``"param"`` vector starts at 0 (std 1) and draws
    no random numbers.
    """

    def __init__(
        self, n_agents: int, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int], log_std: str
    ) -> None:
        super().__init__()
        if log_std not in LOG_STD_KINDS:
            raise ValueError(f"log_std: expected one of {LOG_STD_KINDS}, found {log_std!r}")
        self.trunk = hidden_stack(obs_dim + n_agents, hidden_sizes)
        in_dim = hidden_sizes[-1] if hidden_sizes else obs_dim + n_agents
        self.mean_head = nn.Linear(in_dim, action_dim)
        if log_std == "state":
            self.log_std_head = nn.Linear(in_dim, action_dim)
        else:
            self.log_std_param = nn.Parameter(torch.zeros(action_dim))
        self.register_buffer("agent_ids", torch.eye(n_agents), persistent=False)

    def heads(self, observations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw mean [B, N, A] and log-std clamped to [-5, 2] ([B, N, A] or [A])."""
        h = apply_flat(self.trunk, with_agent_ids(observations, self.agent_ids))
        raw_log_std = self.log_std_head(h) if hasattr(self, "log_std_head") else self.log_std_param
        return self.mean_head(h), raw_log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    @torch.no_grad()
    def act(self, observations: torch.Tensor, avail_actions: torch.Tensor | None = None) -> torch.Tensor:
        """Deterministic action [B, N, A] (``avail_actions`` ignored)."""
        return self.deterministic_action(observations)

    def deterministic_action(self, observations: torch.Tensor) -> torch.Tensor:
        """The policy's deterministic action in [-1, 1], with gradients: [B, N, A]."""
        raise NotImplementedError

    @staticmethod
    def gaussian_entropy(log_std: torch.Tensor) -> torch.Tensor:
        return (log_std.float() + 0.5 + _HALF_LOG_2PI).sum(-1)


class TanhGaussianPolicy(_GaussianHeads):
    """The reference's policy: ``a = tanh(u)``, ``u ~ Normal(mean, exp(log_std))``.

    ``mean_and_log_std``: observations [B, N, O] -> pre-tanh mean, log_std [B, N, A],
    clamped to [-9, 9] and [-5, 2]. Deterministic action: ``tanh(mean)``. Dataset actions
    are clipped to (-1 + ``action_eps``, 1 - ``action_eps``) and inverted with atanh for
    their log-probability (a saturated action lands at a pre-tanh value of ~8.3 with the
    reference's 1e-7).
    """

    def __init__(
        self,
        n_agents: int,
        obs_dim: int,
        action_dim: int,
        hidden_sizes: Sequence[int],
        action_eps: float = ACTION_EPS,
        log_std: str = "state",
    ) -> None:
        super().__init__(n_agents, obs_dim, action_dim, hidden_sizes, log_std)
        self.action_eps = action_eps

    def mean_and_log_std(self, observations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.heads(observations)
        return mean.clamp(-MEAN_CLAMP, MEAN_CLAMP), log_std.expand_as(mean)

    def log_prob_and_entropy(
        self, observations: torch.Tensor, actions: torch.Tensor, avail_actions: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """log pi(a | o) of dataset ``actions`` [B, N, A] -> [B, N], and the entropy of the
        pre-tanh Gaussian [B, N] (a diagnostic: the squashed entropy has no closed form).
        ``avail_actions`` is ignored (continuous actions are always available)."""
        mean, log_std = self.mean_and_log_std(observations)
        log_probs = tanh_gaussian_log_prob(mean.float(), log_std.float(), actions.float(), self.action_eps)
        return log_probs, self.gaussian_entropy(log_std)

    def deterministic_action(self, observations: torch.Tensor) -> torch.Tensor:
        """``tanh(clamp(mean))``: [B, N, A]."""
        return torch.tanh(self.mean_and_log_std(observations)[0])


class TanhMeanGaussianPolicy(_GaussianHeads):
    """``a ~ Normal(tanh(m(o)), exp(log_std))``: the Gaussian of IQL in CORL
    (``algorithms/offline/iql.py``, ``GaussianPolicy``), whose mean is squashed and whose
    log-probability is evaluated on the raw dataset action, with no atanh and no clipping,
    so a saturated action (+-1) is an ordinary point near the mean's range edge.

    ``mean_and_log_std``: observations [B, N, O] -> mean in [-1, 1] and log_std in
    [-5, 2], [B, N, A]. Deterministic action: the mean. Samples can leave [-1, 1]; the
    deterministic action never does. ``action_eps`` is unused (nothing is clipped).
    """

    def __init__(
        self,
        n_agents: int,
        obs_dim: int,
        action_dim: int,
        hidden_sizes: Sequence[int],
        log_std: str = "state",
    ) -> None:
        super().__init__(n_agents, obs_dim, action_dim, hidden_sizes, log_std)

    def mean_and_log_std(self, observations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.heads(observations)
        return torch.tanh(mean), log_std.expand_as(mean)

    def log_prob_and_entropy(
        self, observations: torch.Tensor, actions: torch.Tensor, avail_actions: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """log pi(a | o) of dataset ``actions`` [B, N, A] -> [B, N] and the Gaussian's
        entropy [B, N]. ``avail_actions`` is ignored."""
        mean, log_std = self.mean_and_log_std(observations)
        log_probs = gaussian_log_prob(mean.float(), log_std.float(), actions.float())
        return log_probs, self.gaussian_entropy(log_std)

    def deterministic_action(self, observations: torch.Tensor) -> torch.Tensor:
        """The squashed mean: [B, N, A]."""
        return self.mean_and_log_std(observations)[0]


def build_continuous_policy(
    kind: str,
    n_agents: int,
    obs_dim: int,
    action_dim: int,
    hidden_sizes: Sequence[int],
    action_eps: float = ACTION_EPS,
    log_std: str = "state",
) -> nn.Module:
    """The continuous policy named by ``kind`` (one of :data:`POLICY_KINDS`)."""
    if kind == "tanh_gaussian":
        return TanhGaussianPolicy(n_agents, obs_dim, action_dim, hidden_sizes, action_eps, log_std)
    if kind == "gaussian_tanh_mean":
        return TanhMeanGaussianPolicy(n_agents, obs_dim, action_dim, hidden_sizes, log_std)
    raise ValueError(f"policy: expected one of {POLICY_KINDS}, found {kind!r}")
