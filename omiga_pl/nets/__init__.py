"""Networks: shared-parameter per-agent MLPs, policies and the global mixer."""

from omiga_pl.nets.agent import AgentMLP, mlp
from omiga_pl.nets.deterministic import DeterministicPolicy, TwinQ
from omiga_pl.nets.mixer import MIXER_KINDS, Mixer, QMixer, build_mixer
from omiga_pl.nets.policy import CategoricalPolicy, TanhGaussianPolicy

__all__ = [
    "MIXER_KINDS",
    "AgentMLP",
    "CategoricalPolicy",
    "DeterministicPolicy",
    "Mixer",
    "QMixer",
    "TanhGaussianPolicy",
    "TwinQ",
    "build_mixer",
    "mlp",
]
