"""What the trainer reads of a dataset, and its batches: in-memory splits, modality subsets, padding masks."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from wsfusion.data import InMemoryDataset


@dataclass(frozen=True)
class ModalitySubset:
    """A dataset restricted to some of its modalities (a view: no tensor is copied)."""

    inputs: Mapping[str, Tensor]
    labels: Tensor
    modality_shapes: Mapping[str, tuple[int, ...]]
    num_classes: int
    input_masks: Mapping[str, Tensor]


def input_masks(dataset: InMemoryDataset) -> Mapping[str, Tensor]:
    """The dataset's padding masks ``{m: (N, L_m)}`` (empty when it has none)."""
    return getattr(dataset, "input_masks", {})


def batch_input_mask(dataset: InMemoryDataset, index: Tensor, device: torch.device | str) -> dict[str, Tensor]:
    """The padding masks of the samples ``index`` (a batch from :func:`batches`), on ``device``."""
    return {m: v[index].to(device) for m, v in input_masks(dataset).items()}


def select_modalities(dataset: InMemoryDataset, modalities: Sequence[str] | None) -> InMemoryDataset:
    """``dataset`` with only ``modalities`` (all of them for ``None``)."""
    if modalities is None:
        return dataset
    unknown = [m for m in modalities if m not in dataset.inputs]
    if unknown:
        raise ValueError(f"modality {unknown[0]!r} is not in the data; it has {list(dataset.inputs)}")
    return ModalitySubset(
        inputs={m: dataset.inputs[m] for m in modalities},
        labels=dataset.labels,
        modality_shapes={m: dataset.modality_shapes[m] for m in modalities},
        num_classes=dataset.num_classes,
        input_masks={m: v for m, v in input_masks(dataset).items() if m in modalities},
    )


def batches(
    dataset: InMemoryDataset, batch_size: int, *, generator: torch.Generator | None = None,
    rank: int = 0, world_size: int = 1,
) -> Iterator[tuple[dict[str, Tensor], Tensor, Tensor]]:
    """``(inputs, labels, index)`` batches; shuffled when a generator is given.

    The batch's padding masks are :func:`batch_input_mask` of ``index``.

    With several ranks each takes every ``world_size``-th sample of the same
    permutation, padded by wrapping around so all ranks run the same number
    of steps (as ``DistributedSampler`` does).
    """
    n = dataset.labels.numel()
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    if world_size > 1:
        per_rank = math.ceil(n / world_size)
        order = torch.cat([order, order[: per_rank * world_size - n]])[rank::world_size]
    for start in range(0, order.numel(), batch_size):
        index = order[start : start + batch_size]
        yield {m: x[index] for m, x in dataset.inputs.items()}, dataset.labels[index], index


Batch = tuple[dict[str, Tensor], "dict[str, Tensor] | None", dict[str, Tensor], Tensor]
"""``(inputs, mask, input_mask, labels)`` on the device: what the model and the loss take."""


def batch_on_device(dataset: InMemoryDataset, inputs: Mapping[str, Tensor], labels: Tensor, index: Tensor,
                    mask: Mapping[str, Tensor] | None, device: torch.device | str) -> Batch:
    """A batch of :func:`batches` (with the ``mask`` of a corruption or modality dropout) moved to ``device``,
    with its padding masks."""
    return ({m: x.to(device) for m, x in inputs.items()},
            None if mask is None else {m: v.to(device) for m, v in mask.items()},
            batch_input_mask(dataset, index, device), labels.to(device))


