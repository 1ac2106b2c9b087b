"""The read-only interface of a :class:`~wsfusion.graphs.CrossModalGraph` that the conversions and metrics use.

:mod:`wsfusion.graphs._formats` and :mod:`wsfusion.graphs.metrics` sit below
:mod:`wsfusion.graphs.graph` (the class's methods call them), so they read a
graph through this protocol, its public attributes only, and never import
the class.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

import torch
from torch import Tensor

if TYPE_CHECKING:  # pragma: no cover - imports for annotations only
    import networkx as nx

__all__ = ["GraphLike"]


class GraphLike(Protocol):
    """What :class:`~wsfusion.graphs.CrossModalGraph` offers to the conversions and metrics."""

    @property
    def num_nodes(self) -> int: ...

    @property
    def num_self_loops(self) -> int: ...

    @property
    def modalities(self) -> tuple[str, ...]: ...

    @property
    def vocabulary(self) -> tuple[str, ...]: ...

    @property
    def node_counts(self) -> Mapping[str, int]: ...

    @property
    def node_slices(self) -> Mapping[str, slice]: ...

    @property
    def node_modality(self) -> Tensor: ...

    @property
    def edge_index(self) -> Tensor: ...

    @property
    def edge_type(self) -> Tensor: ...

    @property
    def relation_names(self) -> list[tuple[str, str]]: ...

    @property
    def ring_order(self) -> Tensor: ...

    @property
    def k(self) -> int | None: ...

    @property
    def beta(self) -> float | None: ...

    @property
    def seed(self) -> int | None: ...

    @property
    def order(self) -> str | None: ...

    def edge_tensors(self, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]: ...

    def to_networkx(self) -> nx.Graph: ...
