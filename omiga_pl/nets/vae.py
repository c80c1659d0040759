"""BCQ's generative model of the behaviour policy and its bounded perturbation actor
(Fujimoto et al. 2019, "Off-policy deep RL without exploration"), per agent with shared
weights and a one-hot agent id, like every other per-agent net here.

The caller owns every random draw (the latent noise is an argument), so training can
draw it from a generator seeded by the update index (exact resume) and acting from a
fixed one (deterministic evaluation that never touches the global torch RNG).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from omiga_pl.nets.agent import AgentMLP
from omiga_pl.noise import NoiseSource

# Encoder log-std clamp and prior-sample clip of the BCQ authors' VAE.
LOG_STD_MIN, LOG_STD_MAX = -4.0, 15.0
LATENT_CLIP = 0.5


class ConditionalVAE(nn.Module):
    """Conditional VAE of the dataset actions given the observation.

    Encoder ``(o_i, a_i) -> (mu, log_std)`` of a ``latent_dim`` Gaussian (log-std clamped
    to [-4, 15]); decoder ``(o_i, z) -> tanh(.)`` in [-1, 1]^A. Shapes: observations
    [..., N, O], actions [..., N, A], latents [..., N, L].
    """

    def __init__(
        self, n_agents: int, obs_dim: int, action_dim: int, latent_dim: int, hidden_sizes: Sequence[int]
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        # One linear layer with 2L outputs is the mean and log-std heads side by side.
        self.encoder = AgentMLP(n_agents, obs_dim + action_dim, hidden_sizes, 2 * latent_dim)
        self.decoder = AgentMLP(n_agents, obs_dim + latent_dim, hidden_sizes, action_dim)

    def encode(self, observations: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior ``(mu, log_std)``, both [..., N, L]."""
        mean, log_std = self.encoder(torch.cat([observations, actions], dim=-1)).chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def decode(self, observations: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """Actions ``tanh(decoder(o, z))``: [..., N, A]."""
        return torch.tanh(self.decoder(torch.cat([observations, latents], dim=-1)))

    def forward(
        self, observations: torch.Tensor, actions: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruction through the reparameterised posterior ``z = mu + std * noise``.

        ``noise`` [..., N, L] is standard normal, drawn by the caller. Returns the
        reconstructed actions [..., N, A] and the posterior ``mu``, ``log_std`` [..., N, L].
        """
        mean, log_std = self.encode(observations, actions)
        latents = mean + log_std.exp() * noise
        return self.decode(observations, latents), mean, log_std


def prior_latents(shape: Sequence[int], noise: NoiseSource, like: torch.Tensor) -> torch.Tensor:
    """Standard-normal latents clipped to [-0.5, 0.5], as BCQ samples its decoder, drawn
    from ``noise`` (omiga_pl/noise.py) on ``like``'s device and dtype."""
    return noise.normal(shape, like=like).clamp(-LATENT_CLIP, LATENT_CLIP)


class PerturbationActor(nn.Module):
    """BCQ's actor ``xi``: ``clamp(a + phi * tanh(f(o_i, a_i)), -1, 1)``.

    The perturbation is bounded by ``phi`` (actions live in [-1, 1]), so the actor can only
    nudge the generative model's samples, not leave the data's support.
    forward: observations [..., N, O], actions [..., N, A] -> [..., N, A].
    """

    def __init__(
        self, n_agents: int, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int], phi: float
    ) -> None:
        super().__init__()
        self.phi = phi
        self.net = AgentMLP(n_agents, obs_dim + action_dim, hidden_sizes, action_dim)

    def forward(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        delta = self.phi * torch.tanh(self.net(torch.cat([observations, actions], dim=-1)))
        return (actions + delta).clamp(-1.0, 1.0)
