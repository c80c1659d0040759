"""Lightning callbacks: online evaluation."""

from omiga_pl.callbacks.evaluation import EvaluationCallback

__all__ = ["EvaluationCallback"]
