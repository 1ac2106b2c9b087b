"""The trainer: AdamW, warm-up + cosine schedule, early stopping, checkpoints, resume, DDP.

No training logic lives in the modules; this file is where it is.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from wsfusion import data as data_registry
from wsfusion._io import atomic_write_text
from wsfusion._validation import check_device
from wsfusion.models import MultiModalNetwork, build_model
from wsfusion.topology import LearnableWSGraph
from wsfusion.train import distributed
from wsfusion.train.callbacks import Callback, TemperatureSchedule
from wsfusion.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state, warm_start
from wsfusion.train.batching import (
    Batch,
    InMemoryDataset,
    ModalitySubset,
    batch_input_mask,
    batch_on_device,
    batches,
    input_masks,
    select_modalities,
)
from wsfusion.train.config import PRECISIONS, TrainConfig

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
RESULT = "result.json"

__all__ = ["Trainer", "train", "evaluate", "batches", "batch_on_device", "forward_loss", "Batch", "InMemoryDataset",
           "ModalitySubset", "input_masks", "batch_input_mask", "select_modalities", "check_config", "build_datasets",
           "data_layout", "model_for", "parameter_groups", "warmup_cosine", "lr_factor", "autocast", "check_precision",
           "resolve_device", "CHECKPOINT", "METRICS", "RESULT"]


def resolve_device(name: str) -> torch.device:
    """``config.device`` as a :class:`torch.device` (``"auto"``: CUDA if available); ``ValueError`` if this
    process cannot use it (e.g. ``"cuda"`` on a CPU-only torch build)."""
    return check_device(name)


#: Autocast dtype of each mixed :data:`~wsfusion.train.config.PRECISIONS` entry.
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "16": torch.float16}


def check_precision(precision: str, device: torch.device | str) -> None:
    """``ValueError`` unless ``torch.autocast`` runs ``precision`` on ``device`` in this torch build."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "32":
        return
    device_type = torch.device(device).type
    dtype = AUTOCAST_DTYPES[precision]
    if device_type == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise ValueError("precision 'bf16' needs a GPU with bfloat16 support, which this one lacks; use precision '16'")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an unsupported dtype disables autocast with a warning
        try:
            with torch.autocast(device_type=device_type, dtype=dtype):
                enabled = torch.is_autocast_enabled(device_type)
        except (RuntimeError, TypeError):
            enabled = False
    if not enabled:
        raise ValueError(f"precision {precision!r} is not supported: torch {torch.__version__} has no "
                         f"{dtype} autocast on {device_type}; use precision '32'")


def autocast(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``precision`` on ``device`` (a no-op context for ``"32"``)."""
    if precision == "32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=AUTOCAST_DTYPES[precision])


def build_datasets(config: TrainConfig) -> tuple[InMemoryDataset, InMemoryDataset, InMemoryDataset]:
    """Train, validation and test splits for ``config.data``: :func:`wsfusion.data.build` with the config's
    :meth:`~wsfusion.train.TrainConfig.dataset_options`."""
    return data_registry.build(config.data, **config.dataset_options())


def model_for(config: TrainConfig, modality_shapes: Mapping[str, tuple[int, ...]], num_classes: int) -> MultiModalNetwork:
    """:func:`wsfusion.models.build_model` with ``config``'s fusion and model options."""
    return build_model(config.fusion, modality_shapes, num_classes, **config.model_options())


def data_layout(config: TrainConfig) -> tuple[dict[str, tuple[int, ...]], int]:
    """The per-sample shape of each modality of ``config.data`` and its number of classes, without loading
    the data (nor downloading AV-digits): what :func:`wsfusion.models.build_model` needs
    (:func:`wsfusion.data.layout` with the config's :meth:`~wsfusion.train.TrainConfig.dataset_options`)."""
    return data_registry.layout(config.data, **config.dataset_options())


def check_config(config: TrainConfig) -> None:
    """Check everything about ``config`` that can be checked without its data, so that a mistake fails in
    a second, before any data is loaded or downloaded and before any training.

    The device exists (``"cuda"`` on a CPU-only torch build raises), the precision runs on it, the
    modalities are the data's, the fusion is registered and its options build a model on the data's
    shapes (option names, values, a WS degree ``k`` that fits the node count...), ``topology_lr`` has a
    learnable topology to act on and ``rewire`` finds ``WSLinear`` layers. Raises the ``ValueError`` or
    ``TypeError`` of the first problem; the global RNG state is left as it was.
    """
    device = resolve_device(config.device)
    check_precision(config.precision, device)
    shapes, num_classes = data_layout(config)
    if config.modalities is not None:
        unknown = [m for m in config.modalities if m not in shapes]
        if unknown:
            raise ValueError(f"modality {unknown[0]!r} is not in the data; it has {list(shapes)}")
        shapes = {m: shapes[m] for m in config.modalities}
    with torch.random.fork_rng(devices=[]):
        model = model_for(config, shapes, num_classes)
    parameter_groups(model, config)
    if config.rewire is not None:
        from wsfusion.nn import WSLinear
        from wsfusion.train.rewirer import Rewirer

        if not any(isinstance(m, WSLinear) for m in model.modules()):
            raise ValueError(f"rewire={config.rewire!r} rewires WSLinear layers, but fusion {config.fusion!r} has none "
                             "(the ws-sparse fusion has them)")
        Rewirer(delta_t=config.rewire_every, alpha=config.rewire_alpha, mode=config.rewire,
                seed=config.seed).attach(model)


def forward_loss(model: nn.Module, batch: Batch, device: torch.device | str, precision: str,
                 reduction: str = "mean") -> tuple[Tensor, Tensor]:
    """The model's logits on ``batch`` and their cross-entropy, under ``precision``'s autocast (the loss in float32)."""
    inputs, mask, input_mask, labels = batch
    with autocast(device, precision):
        logits = model(inputs, mask, input_mask)
        loss = F.cross_entropy(logits.float(), labels, reduction=reduction)
    return logits, loss


def _sums(loss_sum: float, logits: Tensor, labels: Tensor) -> Tensor:
    """``[loss sum, correct, samples]`` of a batch: what an epoch's metrics add up."""
    return torch.tensor([loss_sum, (logits.argmax(-1) == labels).sum().item(), labels.numel()], dtype=torch.float64)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: InMemoryDataset,
    *,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    transform: Any = None,
    env: distributed.DistEnv = distributed.DistEnv(),
    precision: str = "32",
) -> dict[str, float]:
    """Loss and accuracy over ``dataset``.

    ``transform(inputs, index) -> (inputs, mask)`` corrupts each batch first
    (noise, a missing modality); ``index`` are the samples' positions, so a
    corruption can be made identical for every model. ``precision`` (a
    :attr:`TrainConfig.precision`) runs the forward pass and the loss under the
    same ``torch.autocast`` as training.
    """
    was_training = model.training
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64)
    for inputs, labels, index in batches(dataset, batch_size, rank=env.rank, world_size=env.world_size):
        mask = None
        if transform is not None:
            inputs, mask = transform(inputs, index)
        batch = batch_on_device(dataset, inputs, labels, index, mask, device)
        logits, loss = forward_loss(model, batch, device, precision, reduction="sum")
        totals += _sums(loss.item(), logits, batch[3])
    model.train(was_training)
    totals = distributed.all_reduce_sum(totals, env, "evaluation", device)
    return {"loss": totals[0].item() / totals[2].item(), "acc": totals[1].item() / totals[2].item()}


def warmup_cosine(total_steps: int, warmup_steps: int):
    """LR multiplier: linear warm-up to 1, then cosine decay to 0 at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def lr_factor(config: TrainConfig, steps_per_epoch: int):
    """The learning-rate multiplier of step ``t`` under ``config.lr_schedule``: :func:`warmup_cosine` over the
    whole budget (``"warmup-cosine"``) or 1 throughout (``"constant"``)."""
    if config.lr_schedule == "constant":
        return lambda step: 1.0
    return warmup_cosine(steps_per_epoch * config.epochs, round(config.warmup_epochs * steps_per_epoch))


#: DDP's own buffer broadcast off (the CollectiveWatch does it): the keyword was renamed in torch 2.13.
_NO_BUFFER_SYNC = ({"forward_sync_buffers": False}
                   if "forward_sync_buffers" in inspect.signature(nn.parallel.DistributedDataParallel).parameters
                   else {"broadcast_buffers": False})


def parameter_groups(model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """AdamW parameter groups: the model's parameters, and with ``config.topology_lr`` the parameters of
    every :class:`~wsfusion.topology.LearnableWSGraph` in their own group (that learning rate, no weight
    decay: decay would pull beta's logit towards beta = 0.5 and every gate towards half open)."""
    if config.topology_lr is None:
        return [{"params": list(model.parameters())}]
    topology = {id(p): p for m in model.modules() if isinstance(m, LearnableWSGraph) for p in m.parameters()}
    if not topology:
        raise ValueError(f"topology_lr is set but the model ({config.fusion!r}, options {config.fusion_options}) "
                         "has no learnable topology (fusion option topology='learnable')")
    rest = [p for p in model.parameters() if id(p) not in topology]
    return [{"params": rest}, {"params": list(topology.values()), "lr": config.topology_lr, "weight_decay": 0.0}]


class Trainer:
    """Trains one :class:`TrainConfig`; see :func:`train`."""

    def __init__(
        self,
        config: TrainConfig,
        out: str | Path | None = None,
        *,
        datasets: Sequence[InMemoryDataset] | None = None,
        model: nn.Module | None = None,
        callbacks: Sequence[Callback] = (),
        progress: bool = True,
    ) -> None:
        self.config = config
        self.out = None if out is None else Path(out)
        self.env = distributed.from_environment()
        self.device = resolve_device(config.device)
        if self.env.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.env.local_rank)
        check_precision(config.precision, self.device)
        # float16 scales the loss so small gradients survive; disabled (a pass-through) otherwise.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.precision == "16")
        self.callbacks = list(callbacks)
        if config.rewire is not None:
            from wsfusion.train.rewirer import Rewirer

            self.callbacks.append(Rewirer(delta_t=config.rewire_every, alpha=config.rewire_alpha,
                                          mode=config.rewire, seed=config.seed))
        if config.temperature_schedule:
            self.callbacks.append(TemperatureSchedule())
        self.progress = progress and self.env.is_main
        torch.manual_seed(config.seed)
        splits = datasets if datasets is not None else build_datasets(config)
        self.train_set, self.val_set, self.test_set = (select_modalities(d, config.modalities) for d in splits)
        if model is None:
            model = model_for(config, self.train_set.modality_shapes, self.train_set.num_classes)
        if config.init_from is not None:  # before the optimiser sees the parameters; a resume overwrites it
            warm_start(model, config.init_from)
        self.model = model.to(self.device)
        self.train_size = len(self.train_set.labels)
        self.steps_per_epoch = math.ceil(math.ceil(self.train_size / self.env.world_size) / config.batch_size)
        self.optimizer = torch.optim.AdamW(parameter_groups(self.model, config), lr=config.lr,
                                           weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_factor(config, self.steps_per_epoch))
        #: The batch of the running step on the device, ``(inputs, mask, input_mask, labels)``: what a callback's
        #: ``on_step_end`` may score (attention-edge rewiring); ``None`` outside a step.
        self.batch: Batch | None = None
        self.epoch = 0  # epochs completed
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"val_acc": -1.0, "epoch": 0, "model": None}
        self.bad_epochs = 0
        for cb in self.callbacks:
            cb.on_fit_start(self)

    # -- state -------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "history": self.history,
            "best": self.best,
            "bad_epochs": self.bad_epochs,
            "callbacks": [{"type": type(cb).__name__, "state": cb.state_dict()} for cb in self.callbacks],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = TrainConfig.from_dict(state["config"])
        if saved != self.config:
            diff = {k: (v, getattr(self.config, k)) for k, v in saved.to_dict().items() if getattr(saved, k) != getattr(self.config, k)}
            raise ValueError(f"cannot resume: the checkpoint was written with a different config {diff} (saved, now)")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):  # float16 runs only (checkpoints before precision existed have none)
            self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        self.epoch, self.step = state["epoch"], state["step"]
        self.history, self.best, self.bad_epochs = state["history"], state["best"], state["bad_epochs"]
        self._load_callback_states(state["callbacks"])

    def _load_callback_states(self, saved: list[Any]) -> None:
        """Give each callback the saved state of its class, in order: the config's callbacks (rewiring,
        temperature) and the caller's may come in another order, or with other callbacks, on resume."""
        if not all(isinstance(s, dict) and set(s) == {"type", "state"} for s in saved):
            for cb, cb_state in zip(self.callbacks, saved):  # checkpoints written before states were typed
                cb.load_state_dict(cb_state)
            return
        by_type: dict[str, list[dict[str, Any]]] = {}
        for entry in saved:
            by_type.setdefault(entry["type"], []).append(entry["state"])
        for cb in self.callbacks:
            states = by_type.get(type(cb).__name__)
            if states:
                cb.load_state_dict(states.pop(0))

    def resume(self) -> bool:
        """Continue from ``out/checkpoint.pt`` if there is one; return whether it did."""
        path = None if self.out is None else self.out / CHECKPOINT
        if path is None or not path.exists():
            return False
        self.load_state_dict(load_checkpoint(path, map_location=self.device))
        return True

    # -- training ----------------------------------------------------------
    def restart_selection(self) -> None:
        """Forget the best epoch so far: the model tested at the end is the best-validation one among the
        epochs from now on, and early stopping counts from now (a curriculum's stage on another task)."""
        self.best = {"val_acc": -1.0, "epoch": 0, "model": None}
        self.bad_epochs = 0

    def _augment(self, inputs: dict[str, Tensor], generator: torch.Generator) -> tuple[dict[str, Tensor], dict[str, Tensor] | None]:
        if self.config.modality_dropout == 0.0:
            return inputs, None
        from wsfusion.data import modality_dropout

        return modality_dropout(inputs, self.config.modality_dropout, generator=generator)

    def fit(self) -> dict[str, Any]:
        """Train until the epoch budget or early stopping, then test the best model."""
        distributed.setup(self.env, self.device)
        result = self._fit()  # on a failure the group is not torn down: that waits for a stalled peer
        distributed.teardown(self.env)
        return result

    def _fit(self) -> dict[str, Any]:
        config = self.config
        model: nn.Module = self.model
        watch = distributed.CollectiveWatch(self.env)
        if self.env.enabled:
            # Buffers are synced by the watch at the start of each step, a collective every rank must
            # join: a peer lost since the last step is then known by state, not guessed from gloo's text.
            model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=config.modality_dropout > 0, **_NO_BUFFER_SYNC,
            )
        stopped_early = self._stop_early()
        if self.env.is_main and self.out is not None:
            # The metrics file always starts as the checkpoint's history (empty without one): a run
            # killed after appending an epoch but before checkpointing it never shows that epoch twice.
            atomic_write_text(self.out / METRICS, "".join(json.dumps(row) + "\n" for row in self.history))
        for cb in self.callbacks:
            cb.on_train_start(self)
        bar = tqdm(total=config.epochs * self.steps_per_epoch, initial=self.epoch * self.steps_per_epoch,
                   desc=f"{config.fusion} seed {config.seed}", unit="step", disable=not self.progress, leave=False)
        while self.epoch < config.epochs and not stopped_early:
            start = time.perf_counter()
            # Shuffling and augmentation depend only on (seed, epoch): a resumed run sees the same batches.
            generator = torch.Generator().manual_seed(config.seed * 100_003 + self.epoch)
            for cb in self.callbacks:
                cb.on_epoch_start(self, self.epoch)
            if len(self.train_set.labels) != self.train_size:
                raise ValueError(f"the training set changed size to {len(self.train_set.labels)} samples at epoch "
                                 f"{self.epoch + 1}; a data schedule must keep its {self.train_size} (the number of "
                                 "steps per epoch sets the learning-rate schedule)")
            model.train()
            totals = torch.zeros(3, dtype=torch.float64)
            for inputs, labels, index in batches(self.train_set, config.batch_size, generator=generator,
                                                 rank=self.env.rank, world_size=self.env.world_size):
                inputs, mask = self._augment(inputs, generator)
                self.batch = batch = batch_on_device(self.train_set, inputs, labels, index, mask, self.device)
                for cb in self.callbacks:
                    cb.on_step_start(self, self.step)
                try:
                    if self.env.enabled:
                        watch.sync_buffers(self.model)
                    logits, loss = forward_loss(model, batch, self.device, config.precision)
                    self.optimizer.zero_grad(set_to_none=True)
                    self.scaler.scale(loss).backward()  # DDP all-reduces gradients here
                except RuntimeError as exc:
                    if watch.failed:
                        raise distributed.peer_failure(self.env, f"training step {self.step}", exc) from exc
                    raise
                self.scaler.step(self.optimizer)  # optimizer.step(), skipped on inf/NaN gradients under float16
                self.scaler.update()
                self.scheduler.step()
                self.step += 1
                totals += _sums(loss.item() * batch[3].numel(), logits, batch[3])
                for cb in self.callbacks:
                    cb.on_step_end(self, self.step)
                self.batch = None
                bar.update()
                bar.set_postfix(loss=f"{loss.item():.3f}")
            totals = distributed.all_reduce_sum(totals, self.env, f"epoch {self.epoch + 1} metrics", self.device)
            val = evaluate(distributed.unwrap(model), self.val_set, device=self.device, env=self.env,
                           precision=config.precision)
            self.epoch += 1
            row = {"epoch": self.epoch, "train_loss": totals[0].item() / totals[2].item(),
                   "train_acc": totals[1].item() / totals[2].item(), "val_loss": val["loss"], "val_acc": val["acc"],
                   "lr": self.scheduler.get_last_lr()[0], "seconds": time.perf_counter() - start}
            self.history.append(row)
            if val["acc"] > self.best["val_acc"]:
                self.best = {"val_acc": val["acc"], "epoch": self.epoch,
                             "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()}}
                self.bad_epochs = 0
            else:
                self.bad_epochs += 1
            for cb in self.callbacks:
                cb.on_epoch_end(self, self.epoch, row)
            stopped_early = self._stop_early()
            if self.env.is_main and self.out is not None:
                save_checkpoint(self.state_dict(), self.out / CHECKPOINT)
                with open(self.out / METRICS, "a") as f:
                    f.write(json.dumps(row) + "\n")
        bar.close()
        return self._finish(stopped_early)

    def _stop_early(self) -> bool:
        return self.config.patience is not None and self.bad_epochs >= self.config.patience

    def _finish(self, stopped_early: bool) -> dict[str, Any]:
        if self.best["model"] is not None:
            self.model.load_state_dict(self.best["model"])
        test = evaluate(self.model, self.test_set, device=self.device, env=self.env, precision=self.config.precision)
        result = {
            "config": self.config.to_dict(),
            "precision": self.config.precision,
            "epochs_run": self.epoch,
            "stopped_early": stopped_early,
            "best_epoch": self.best["epoch"],
            "val_acc": self.best["val_acc"],
            "test_acc": test["acc"],
            "test_loss": test["loss"],
            "train_seconds": sum(row["seconds"] for row in self.history),
            "history": self.history,
        }
        if self.env.is_main and self.out is not None:
            atomic_write_text(self.out / RESULT, json.dumps(result, indent=2) + "\n")
        return result


def train(
    config: TrainConfig,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    datasets: Sequence[InMemoryDataset] | None = None,
    model: nn.Module | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
) -> tuple[dict[str, Any], nn.Module]:
    """Train one configuration; return the result (test accuracy of the best-validation epoch, history) and the model.

    With ``out`` the run writes ``metrics.jsonl`` (one line per epoch),
    ``checkpoint.pt`` after every epoch (atomic; model, optimiser, scheduler,
    RNG states, callbacks' state, config, history) and ``result.json``. With
    ``resume=True`` it continues from ``out/checkpoint.pt`` and reaches the
    same final metrics as an uninterrupted run.

    ``datasets`` (train, validation, test) replace the config's data, and ``model`` the model it
    describes (:func:`wsfusion.models.build_model` of its fusion): any module whose
    ``forward(inputs, mask, input_mask)`` returns logits ``[B, C]`` trains the same way (the
    routing benchmark's token model does). Callbacks see the trainer as a
    :class:`~wsfusion.train.callbacks.TrainingState`.
    """
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
    trainer = Trainer(config, out, datasets=datasets, model=model, callbacks=callbacks, progress=progress)
    if resume:
        trainer.resume()
    result = trainer.fit()
    return result, trainer.model
