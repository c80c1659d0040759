"""Lightning callbacks: online evaluation, checkpoints at update counts."""

from omiga_pl.callbacks.checkpoint import UpdateCheckpoint
from omiga_pl.callbacks.evaluation import EvaluationCallback

__all__ = ["EvaluationCallback", "UpdateCheckpoint"]
