"""Networks: shared-parameter per-agent MLPs, policies, BCQ's generative model and the global mixers."""

from omiga_pl.nets.agent import AgentMLP, mlp
from omiga_pl.nets.mixer import MIXER_KINDS, Mixer, QMixer, build_mixer
from omiga_pl.nets.policy import CategoricalPolicy, TanhGaussianPolicy
from omiga_pl.nets.vae import ConditionalVAE, PerturbationActor, prior_latents

__all__ = [
    "MIXER_KINDS",
    "AgentMLP",
    "CategoricalPolicy",
    "ConditionalVAE",
    "Mixer",
    "PerturbationActor",
    "QMixer",
    "TanhGaussianPolicy",
    "build_mixer",
    "mlp",
    "prior_latents",
]
