"""Networks: shared-parameter per-agent MLPs, policies and the global mixer."""

from omiga_pl.nets.agent import AgentMLP, mlp
from omiga_pl.nets.mixer import Mixer
from omiga_pl.nets.policy import CategoricalPolicy, TanhGaussianPolicy

__all__ = ["AgentMLP", "CategoricalPolicy", "Mixer", "TanhGaussianPolicy", "mlp"]
