"""Training scalars as means over their logging interval, accumulated on the device.

A logged ``train/*`` value is the mean over every update since the previous log, not the
one update that happens to fall on the logging step. :class:`IntervalMeans` is a
torchmetrics ``Metric`` holding one running sum per scalar, as a single vector, and an
update count: one in-place add per update, no host synchronisation (the values stay on
the device until the logging step reads them). Under DDP ``compute`` sums the states over
ranks (torchmetrics' sync), so a logged value is the mean over ranks and updates.

For a per-update maximum (``z_max``, say) the logged value is the mean of the maxima.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchmetrics import Metric


class IntervalMeans(Metric):
    """Running means of a fixed list of named scalars.

    update(values): ``values`` [K] (float, the K scalars of one update, in ``names`` order).
    compute(): {name: mean since the last reset} (tensors; the caller reads them once).
    """

    full_state_update = False

    def __init__(self, names: Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.names = list(names)
        self.add_state("total", torch.zeros(len(self.names)), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros(()), dist_reduce_fx="sum")

    def update(self, values: torch.Tensor) -> None:  # type: ignore[override]
        self.total += values.detach().to(self.total.dtype)
        self.count += 1

    def compute(self) -> dict[str, torch.Tensor]:  # type: ignore[override]
        means = self.total / self.count
        return dict(zip(self.names, means.unbind()))

    def snapshot(self) -> dict[str, Any]:
        """What a checkpoint keeps of an interval in progress (a resumed run logs the same means)."""
        return {
            "names": list(self.names),
            "total": self.total.cpu().clone(),
            "count": self.count.cpu().clone(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        if list(state["names"]) != self.names:
            raise ValueError(f"training scalars {state['names']} do not match {self.names}")
        self.total.copy_(state["total"])
        self.count.copy_(state["count"])
