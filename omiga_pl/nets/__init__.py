"""Networks: shared-parameter per-agent MLPs, policies, BCQ's generative model and the global mixers."""

from omiga_pl.nets.agent import AgentMLP, mlp
from omiga_pl.nets.deterministic import DeterministicPolicy, TwinQ
from omiga_pl.nets.mixer import MIXER_KINDS, Mixer, QMixer, build_mixer
from omiga_pl.nets.policy import (
    CategoricalPolicy,
    TanhGaussianPolicy,
    TanhMeanGaussianPolicy,
    tanh_gaussian_sample,
)
from omiga_pl.nets.vae import ConditionalVAE, PerturbationActor, prior_latents

__all__ = [
    "MIXER_KINDS",
    "AgentMLP",
    "CategoricalPolicy",
    "ConditionalVAE",
    "DeterministicPolicy",
    "Mixer",
    "PerturbationActor",
    "QMixer",
    "TanhGaussianPolicy",
    "TanhMeanGaussianPolicy",
    "TwinQ",
    "build_mixer",
    "mlp",
    "prior_latents",
    "tanh_gaussian_sample",
]
