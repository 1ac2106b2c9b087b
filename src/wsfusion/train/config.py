"""``TrainConfig``: everything that defines a run, JSON-serialisable and stored in its checkpoints."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wsfusion import data as data_registry
from wsfusion._validation import (
    check_fraction,
    check_int,
    check_non_negative_number,
    check_positive_int,
    check_positive_number,
    check_probability,
)

#: The fields of :class:`TrainConfig` that set an option of a registered dataset (dataset -> option ->
#: field). Any other option is set through :attr:`TrainConfig.data_options`, and ``seed`` reaches every
#: dataset that has a ``seed`` option (see :meth:`TrainConfig.dataset_options`).
DATASET_FIELDS: dict[str, dict[str, str]] = {
    "av-digits": {"hard": "hard"},
    "synthetic": {"kind": "synthetic_kind", "num_samples": "synthetic_samples",
                  "modality_shapes": "synthetic_shapes", "num_classes": "synthetic_classes"},
}
#: Regrowth rules of :attr:`TrainConfig.rewire` (and of :class:`~wsfusion.train.Rewirer`, which reads them here).
REWIRE_MODES = ("set", "rigl")
#: Training precisions: ``"32"`` (float32), ``"bf16"`` and ``"16"`` (mixed precision under
#: ``torch.autocast`` with bfloat16 / float16; float16 with a gradient scaler).
PRECISIONS = ("32", "bf16", "16")
#: Learning-rate schedules (:attr:`TrainConfig.lr_schedule`).
LR_SCHEDULES = ("warmup-cosine", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    Args:
        data: A name from :func:`wsfusion.data.available`: ``"av-digits"`` (real image + audio pairs)
            or ``"synthetic"``.
        data_options: Keyword options of that dataset (:func:`wsfusion.data.options`) beyond those
            that the fields below set (:data:`DATASET_FIELDS`) and the ``seed``, e.g.
            ``{"num_frames": 32}`` for AV-digits or ``{"noise_std": 2.0}`` for the synthetic data.
        hard: The noisy AV-digits variant where neither modality alone suffices.
        synthetic_kind: Label structure of the synthetic data
            (``"redundancy"``, ``"uniqueness"``, ``"synergy"``).
        synthetic_samples: Synthetic training-set size (val and test get a quarter each).
        synthetic_shapes: Per-sample shape of each synthetic modality
            (default: the notebook's visual/text/audio shapes).
        synthetic_classes: Number of synthetic classes.
        modalities: Train on these modalities of the data only (``None``: all);
            ``fusion="unimodal"`` with one modality is a unimodal reference run.
        fusion: A name from :func:`wsfusion.fusion.available`.
        fusion_options: Keyword options of that fusion.
        feature_dim: Size of every encoder's output (the fusion's inputs).
        encoder_pool: How the encoders pool their tokens into the vector that
            pooled fusions read: ``"flatten"``, ``"attention"`` or ``"mean"``
            (see :class:`wsfusion.encoders.ModalityEncoder`).
        fused_dim: Fusion output size, read by a linear classification head.
        encoder_channels: CNN widths of the visual/audio encoders.
        epochs: Epoch budget (early stopping may end sooner). The default, 20 epochs
            with the cosine schedule and no early stopping, is the budget at which
            every fusion's validation accuracy has plateaued on AV-digits hard
            (docs/results: the training curves).
        batch_size: Per-process batch size.
        lr: Peak AdamW learning rate; weight_decay: AdamW weight decay.
        warmup_epochs: Linear warm-up (in epochs, may be fractional), then cosine decay to 0.
        lr_schedule: ``"warmup-cosine"`` (the default: the warm-up, then the cosine decay to 0 at the
            end of the budget) or ``"constant"`` (``lr`` at every step; ``warmup_epochs`` unused).
        patience: Stop after this many epochs without a better validation accuracy
            (``None``, the default: train the whole budget; the best-validation
            epoch is still the one tested).
        modality_dropout: Train-time probability of dropping each modality of a sample.
        rewire: Dynamic sparse rewiring of the model's ``WSLinear`` layers: ``"set"``
            (random regrowth) or ``"rigl"`` (largest-gradient regrowth); ``None`` keeps
            the graph fixed. rewire_every: steps between updates (ΔT); rewire_alpha:
            initial fraction of edges replaced (cosine-decayed).
        topology_lr: Peak learning rate of the learnable-topology parameters (those of
            every :class:`~wsfusion.topology.LearnableWSGraph`: the beta logit and the
            edge-gate logits), in their own AdamW group without weight decay and under
            the same warm-up + cosine schedule; ``None``: ``lr``, in the model's group.
        temperature_schedule: Anneal every learnable graph's relaxation temperature
            from its ``temperature`` to its ``final_temperature`` over the whole budget
            (a :class:`~wsfusion.train.TemperatureSchedule` callback; its state is in the
            checkpoints and re-applied on resume).
        seed: Seeds data splits, initialisation, shuffling and dropout.
        init_from: A checkpoint (or run folder) whose final model parameters initialise this
            run's model, matched by name and shape (:func:`~wsfusion.train.checkpoint.warm_start`):
            a curriculum over the sequence length, run by run. Stored as an absolute path, which is
            all that identifies it: retraining the source in place does not invalidate this run.
            ``None`` (default): the seed's initialisation.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``... or ``"auto"``.
        precision: ``"32"`` (float32, the default), ``"bf16"`` or ``"16"``: the forward
            pass and the loss, in training and in evaluation, run under
            ``torch.autocast(device_type, dtype=torch.bfloat16 | torch.float16)``;
            parameters and optimiser state stay float32. ``"16"`` scales the loss with a
            ``torch.amp.GradScaler``, whose state is in the checkpoints (resume is exact);
            bfloat16 needs no scaler. (``32`` and ``16`` may be given as integers.)
    """

    data: str = "synthetic"
    hard: bool = False
    synthetic_kind: str = "synergy"
    synthetic_samples: int = 2000
    synthetic_shapes: dict[str, list[int]] | None = None
    synthetic_classes: int = 10
    modalities: list[str] | None = None
    fusion: str = "late"
    fusion_options: dict[str, Any] = field(default_factory=dict)
    feature_dim: int = 64
    encoder_pool: str = "flatten"
    fused_dim: int = 64
    encoder_channels: tuple[int, int, int] = (16, 32, 64)
    epochs: int = 20
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    lr_schedule: str = "warmup-cosine"
    patience: int | None = None
    modality_dropout: float = 0.0
    rewire: str | None = None
    rewire_every: int = 50
    rewire_alpha: float = 0.3
    topology_lr: float | None = None
    temperature_schedule: bool = False
    seed: int = 0
    device: str = "cpu"
    precision: str = "32"
    data_options: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None

    def __post_init__(self) -> None:
        if self.data not in data_registry.available():
            raise ValueError(f"data must be one of {data_registry.available()}, got {self.data!r}")
        self._check_data_options()
        if self.precision in (32, 16) and not isinstance(self.precision, bool):
            object.__setattr__(self, "precision", str(self.precision))
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in ("epochs", "batch_size", "feature_dim", "fused_dim", "synthetic_samples", "synthetic_classes",
                     "rewire_every"):
            object.__setattr__(self, name, check_positive_int(getattr(self, name), name))
        check_positive_number(self.lr, "lr")
        if self.topology_lr is not None:
            check_positive_number(self.topology_lr, "topology_lr (or None)")
        check_int(self.seed, "seed", 0)
        check_fraction(self.rewire_alpha, "rewire_alpha", "(0, 1)")
        for name in ("weight_decay", "warmup_epochs"):
            check_non_negative_number(getattr(self, name), name)
        if self.patience is not None:
            object.__setattr__(self, "patience", check_positive_int(self.patience, "patience (or None)"))
        if self.rewire is not None and self.rewire not in REWIRE_MODES:
            raise ValueError(f"rewire must be None or one of {REWIRE_MODES}, got {self.rewire!r}")
        check_probability(self.modality_dropout, "modality_dropout")
        from wsfusion.encoders import POOLS

        if self.encoder_pool not in POOLS:
            raise ValueError(f"encoder_pool must be one of {POOLS}, got {self.encoder_pool!r}")
        if self.modalities is not None:
            if isinstance(self.modalities, str) or not self.modalities or len(set(self.modalities)) != len(self.modalities):
                raise ValueError(f"modalities must be a non-empty list of distinct names or None, got {self.modalities!r}")
            object.__setattr__(self, "modalities", [str(m) for m in self.modalities])
        object.__setattr__(self, "encoder_channels", tuple(self.encoder_channels))
        if self.init_from is not None:
            # absolute, so that a run resumed or reused from another working directory is the same run
            object.__setattr__(self, "init_from", os.path.abspath(os.fspath(self.init_from)))

    def _check_data_options(self) -> None:
        """``data_options`` names options of :attr:`data` that no field sets; kept as a plain dict."""
        if not isinstance(self.data_options, Mapping):
            raise TypeError(f"data_options must be a mapping option -> value, got {type(self.data_options).__name__}")
        data_registry.check_options(self.data, self.data_options)
        fields = {**DATASET_FIELDS.get(self.data, {}), "seed": "seed"}
        for option in self.data_options:
            if option in fields:
                raise ValueError(f"data_options sets {option!r}, which the TrainConfig field {fields[option]!r} sets "
                                 f"for data={self.data!r}; set that field instead")
        object.__setattr__(self, "data_options", dict(self.data_options))

    def dataset_options(self) -> dict[str, Any]:
        """The keyword options of :func:`wsfusion.data.build` (and :func:`wsfusion.data.layout`) for
        :attr:`data` this run sets: its fields of :data:`DATASET_FIELDS`, ``seed`` where the dataset takes
        one, and :attr:`data_options`."""
        options = {option: getattr(self, name) for option, name in DATASET_FIELDS.get(self.data, {}).items()}
        if "seed" in data_registry.options(self.data):
            options["seed"] = self.seed
        return {**options, **self.data_options}

    def model_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`wsfusion.models.build_model` this run sets."""
        return {"fusion_options": self.fusion_options, "feature_dim": self.feature_dim, "fused_dim": self.fused_dim,
                "encoder_channels": self.encoder_channels, "encoder_pool": self.encoder_pool}

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["encoder_channels"] = list(self.encoder_channels)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}")
        return cls(**values)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)
