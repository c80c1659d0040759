"""omiga_pl: offline cooperative multi-agent RL (OMIGA and baselines) on PyTorch Lightning."""

__version__ = "0.1.0"
