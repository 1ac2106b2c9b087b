"""Training callbacks: the hooks the trainer calls, and the callbacks the library ships.

:class:`Callback` is the interface; :class:`TemperatureSchedule` anneals
learnable-topology gates, and :class:`~wsfusion.train.rewirer.Rewirer`
(SET / RigL) rewires ``WSLinear`` layers. Modules never hold training logic:
whatever changes a model during training is one of these.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from wsfusion._validation import check_positive_int
from wsfusion.topology import LearnableWSGraph
from wsfusion.train import distributed

__all__ = ["Callback", "TemperatureSchedule", "TrainingState"]


class TrainingState(Protocol):
    """What a callback may read (and, where said, set) of the :class:`~wsfusion.train.Trainer` it is called by."""

    config: Any  #: the run's :class:`~wsfusion.train.TrainConfig`
    model: nn.Module  #: the model (never a DDP wrapper)
    optimizer: torch.optim.Optimizer
    step: int  #: optimiser steps taken
    epoch: int  #: epochs completed
    steps_per_epoch: int
    train_set: Any  #: may be replaced in ``on_epoch_start`` by one of the same size (a data schedule)
    val_set: Any  #: may be replaced in ``on_epoch_start`` (e.g. a curriculum's stage)
    batch: Any  #: the running step's ``(inputs, mask, input_mask, labels)`` on the device, or ``None``

    def restart_selection(self) -> None: ...


class Callback:
    """Hooks into training (e.g. topology rewiring). State is saved in checkpoints.

    On resume each callback gets the saved state of its own class (the first
    saved one of that class for the first such callback, and so on), so the
    list may be passed in another order; a callback with no saved state of its
    class starts fresh.

    Every hook is optional; :meth:`state_dict` / :meth:`load_state_dict` round-trip
    through the checkpoint, and :meth:`on_train_start` is where loaded state is
    re-applied to the model (after a resume the model is rebuilt fresh).
    """

    def on_fit_start(self, trainer: TrainingState) -> None:
        """Called once the model and optimiser exist, before a checkpoint is resumed."""

    def on_train_start(self, trainer: TrainingState) -> None:
        """Called when the first step is about to run, after any resume: re-apply state to the model here."""

    def on_epoch_start(self, trainer: TrainingState, epoch: int) -> None:
        """Called before epoch ``epoch + 1`` (``epoch`` are done): a data schedule or curriculum swaps
        ``trainer.train_set`` / ``trainer.val_set`` (or the model's graph) here."""

    def on_step_start(self, trainer: TrainingState, step: int) -> None:
        """Called before the forward pass of step ``step + 1``, with ``trainer.batch`` set."""

    def on_step_end(self, trainer: TrainingState, step: int) -> None:
        """Called after the optimiser step that made ``step`` steps, with ``trainer.batch`` still set."""

    def on_epoch_end(self, trainer: TrainingState, epoch: int, metrics: dict[str, Any]) -> None:  # noqa: D102
        pass

    def state_dict(self) -> dict[str, Any]:  # noqa: D102
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: D102
        pass


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
        self.total_steps = None if total_steps is None else check_positive_int(total_steps, "total_steps")
        self.model = model
        self.progress = 0.0
        #: The learnable graphs' temperatures after the last update (saved in checkpoints).
        self.temperatures: list[float] = []

    def _apply(self, trainer: Any) -> None:
        model = self.model if self.model is not None else distributed.unwrap(trainer.model)
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
