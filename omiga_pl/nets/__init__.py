"""Networks: shared-parameter per-agent MLPs, policies and the global mixer."""

from omiga_pl.nets.agent import AgentMLP, mlp
from omiga_pl.nets.mixer import MIXER_KINDS, Mixer, QMixer, build_mixer
from omiga_pl.nets.policy import CategoricalPolicy, TanhGaussianPolicy, tanh_gaussian_sample

__all__ = [
    "MIXER_KINDS",
    "AgentMLP",
    "CategoricalPolicy",
    "Mixer",
    "QMixer",
    "TanhGaussianPolicy",
    "build_mixer",
    "mlp",
    "tanh_gaussian_sample",
]
