"""Temperature annealing for :class:`~wsfusion.topology.LearnableWSGraph` gates during training."""

from __future__ import annotations

import numbers
from typing import Any

from torch import nn

from wsfusion.topology.learnable import LearnableWSGraph
from wsfusion.train.trainer import Callback

__all__ = ["TemperatureSchedule"]


class TemperatureSchedule(Callback):
    r"""Anneal every :class:`LearnableWSGraph` of the model geometrically over training.

    After step :math:`t` of :math:`T` it calls ``set_progress(t / T)`` on each
    learnable graph, so :math:`\tau_t = \tau_0 (\tau_1/\tau_0)^{t/T}` with the
    graph's own ``temperature`` (:math:`\tau_0`) and ``final_temperature``
    (:math:`\tau_1`).

    Args:
        total_steps (int, optional): :math:`T` (default: the trainer's total steps).
        model (nn.Module, optional): module holding the graphs (default: ``trainer.model``).
    """

    def __init__(self, total_steps: int | None = None, model: nn.Module | None = None) -> None:
        if total_steps is not None and (
            isinstance(total_steps, bool) or not isinstance(total_steps, numbers.Integral) or total_steps < 1
        ):
            raise ValueError(f"total_steps must be a positive integer, got {total_steps!r}")
        self.total_steps = total_steps
        self.model = model
        self.progress = 0.0
        #: The learnable graphs' temperatures after the last update (saved in checkpoints).
        self.temperatures: list[float] = []

    def _apply(self, trainer: Any) -> None:
        model = self.model if self.model is not None else getattr(trainer.model, "module", trainer.model)
        self.temperatures = [module.set_progress(self.progress)
                             for module in model.modules() if isinstance(module, LearnableWSGraph)]

    def on_train_start(self, trainer: Any) -> None:
        # After a resume the graphs are fresh modules at their initial temperature: re-apply.
        self._apply(trainer)

    def on_step_end(self, trainer: Any, step: int) -> None:
        total = self.total_steps or trainer.steps_per_epoch * trainer.config.epochs
        self.progress = min(1.0, step / total)
        self._apply(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"progress": self.progress, "temperatures": list(self.temperatures)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.progress = float(state["progress"])
        self.temperatures = [float(t) for t in state.get("temperatures", [])]
