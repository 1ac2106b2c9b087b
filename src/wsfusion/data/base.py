"""What every dataset shares: the split names, their check, and the in-memory dataset protocol."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple, Protocol, runtime_checkable

from torch import Tensor

__all__ = ["SPLITS", "check_split", "InMemoryDataset", "Layout", "Splits"]

#: The split names, in the order :func:`wsfusion.data.build` returns them (and the index a dataset
#: may use to derive one random stream per split).
SPLITS = ("train", "val", "test")


def check_split(split: object) -> str:
    """``split`` if it is one of :data:`SPLITS`, else a ``ValueError`` listing them."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    return split  # type: ignore[return-value]


@runtime_checkable
class InMemoryDataset(Protocol):
    """What the trainer needs of a dataset: the whole split as tensors.

    - ``inputs``: ``{m: (N, *modality_shapes[m])}`` float tensors, one entry per modality;
    - ``labels``: ``(N,)`` int64 class indices in ``[0, num_classes)``;
    - ``modality_shapes``: the per-sample shape of each modality (what the encoders are built for);
    - ``num_classes``: the size of the classification head.

    ``input_masks`` (optional) marks the real positions of padded sequences,
    ``{m: (N, L_m)}`` bool (e.g. AV-digits' audio frames).
    """

    inputs: Mapping[str, Tensor]
    labels: Tensor
    modality_shapes: Mapping[str, tuple[int, ...]]
    num_classes: int


class Layout(NamedTuple):
    """A dataset's per-sample shape of each modality and its number of classes, known without its data."""

    modality_shapes: dict[str, tuple[int, ...]]
    num_classes: int


class Splits(NamedTuple):
    """The train, validation and test splits of one dataset, built with the same options."""

    train: InMemoryDataset
    val: InMemoryDataset
    test: InMemoryDataset
