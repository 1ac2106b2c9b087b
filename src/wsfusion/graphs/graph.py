r"""The :class:`CrossModalGraph` container: an immutable graph over the nodes of named modalities.

This module owns the graph's private state. Builders live in
:mod:`wsfusion.graphs.builders` (above this module). The conversions
(:mod:`wsfusion.graphs._formats`) and metrics (:mod:`wsfusion.graphs.metrics`)
sit below it and read only the public attributes; the methods ``to_*``,
``from_*`` and ``stats`` are those very functions, bound here.
:mod:`wsfusion.graphs.convert` offers them again as free functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import Tensor

from wsfusion.graphs import _formats, metrics
from wsfusion.graphs._checks import check_nodes, check_order, check_ring_order, check_vocabulary
from wsfusion.graphs.edges import canonical_edge_index

__all__ = ["CrossModalGraph"]


def relation_ids(edge_index: Tensor, node_modality: Tensor, vocabulary_size: int) -> Tensor:
    """``[E]``: the relation id of each edge, ``voc(source) * V + voc(target)``, from each node's
    vocabulary index ``node_modality [N]`` (the one formula every relation id comes from)."""
    return node_modality[edge_index[0]] * vocabulary_size + node_modality[edge_index[1]]


class CrossModalGraph:
    r"""An immutable undirected graph whose nodes belong to named modalities.

    Built by :func:`ws_cross_modal_graph` (or :func:`token_graph`), or from any
    symmetric edge set with :meth:`from_edge_index` (learned or rewired
    topologies).  Node ids are blocked by modality in the order of ``nodes``:
    modality ``m`` owns the contiguous range ``node_slices[m]``.  A modality
    may have 0 nodes (an empty slice, no edges); the graph needs at least one
    node in total.

    Edges are stored once per direction in ``edge_index`` (row 0 source, row
    1 target), sorted by target then source, so an undirected graph with
    :math:`E` edges and :math:`L` self loops has ``edge_index.size(1)``
    :math:`= 2E + L`.

    **Relation vocabulary.**  Relation ids come from an ordered modality
    vocabulary :math:`(v_0, \dots, v_{V-1})` (:attr:`vocabulary`), every
    modality of ``nodes`` among them.  With :math:`\mathrm{voc}(s)` the
    vocabulary index of node :math:`s`'s modality (:attr:`node_modality`),
    each directed edge has the relation id

    .. math::
        \mathrm{edge\_type}(s \to t) = \mathrm{voc}(s) \cdot V + \mathrm{voc}(t),

    one per ordered pair of vocabulary entries, :math:`V^2` in all
    (:attr:`num_relations`, names in :attr:`relation_names`).  Graphs built
    with the same ``vocabulary`` agree on every id whatever their own
    modality sets, node counts or ``nodes`` order, so they can be batched
    (:meth:`to_pyg` refuses to batch graphs of different vocabularies).
    The default ``vocabulary=None`` is the graph's own :attr:`modalities`
    (then :math:`V = M` and the ids are those of earlier releases).

    Immutability: there are no setters, and every tensor property returns a
    fresh copy, so ``graph.edge_index[0, 0] = 5`` cannot change the graph
    (copies cost :math:`O(E)`; read a property once and keep the result in
    hot loops).  Two graphs are ``==`` when their modalities, node counts,
    vocabularies and edge sets agree; ``k``, ``beta``, ``seed``, ``order`` and the ring layout
    are metadata and do not take part.

    Example:
        >>> from wsfusion.graphs import ws_cross_modal_graph
        >>> g = ws_cross_modal_graph({"visual": 64, "text": 64, "audio": 64}, k=6, beta=0.3, seed=42)
        >>> g.num_nodes, g.num_edges, tuple(g.edge_index.shape)
        (192, 576, (2, 1152))
        >>> g.relation_names[1]
        ('visual', 'text')
        >>> VOCAB = ("visual", "text", "audio")
        >>> a = ws_cross_modal_graph({"visual": 8, "audio": 8}, k=4, vocabulary=VOCAB)
        >>> a.modalities, a.vocabulary, a.num_relations
        (('visual', 'audio'), ('visual', 'text', 'audio'), 9)
        >>> a.relation_names[int(a.edge_type[-1])]  # an audio -> audio edge: id 2 * 3 + 2
        ('audio', 'audio')
    """

    __slots__ = (
        "_modalities",
        "_counts",
        "_vocabulary",
        "_edge_index",
        "_ring_order",
        "_node_modality",
        "_edge_type",
        "_k",
        "_beta",
        "_seed",
        "_order",
        "_self_loops",
        "_on_device",
        "_node_counts",
        "_node_slices",
    )

    def __init__(
        self,
        edge_index: Tensor,
        nodes: Mapping[str, int],
        *,
        vocabulary: Sequence[str] | None = None,
        k: int | None = None,
        beta: float | None = None,
        seed: int | None = None,
        order: str | None = None,
        ring_order: Tensor | Sequence[int] | None = None,
        _validated: bool = False,
    ) -> None:
        names, counts = check_nodes(nodes)
        vocab = check_vocabulary(vocabulary, names)
        num_nodes = sum(counts)
        ei = edge_index if _validated else canonical_edge_index(edge_index, num_nodes)
        loops = int((ei[0] == ei[1]).sum())
        if loops not in (0, num_nodes):
            raise ValueError(
                f"self loops must be on every node or on none: found {loops} of {num_nodes}"
            )
        ring = torch.arange(num_nodes) if ring_order is None else check_ring_order(ring_order, num_nodes)
        if order is not None:
            check_order(order)
        node_modality = torch.repeat_interleave(
            torch.tensor([vocab.index(name) for name in names], dtype=torch.long),
            torch.tensor(counts, dtype=torch.long),
        )
        set_ = object.__setattr__
        set_(self, "_modalities", names)
        set_(self, "_counts", counts)
        set_(self, "_vocabulary", vocab)
        set_(self, "_edge_index", ei)
        set_(self, "_ring_order", ring)
        set_(self, "_node_modality", node_modality)
        set_(self, "_edge_type", relation_ids(ei, node_modality, len(vocab)))
        set_(self, "_k", k)
        set_(self, "_beta", beta)
        set_(self, "_seed", seed)
        set_(self, "_order", order)
        set_(self, "_self_loops", loops > 0)
        set_(self, "_on_device", {})
        # Built once: the graph never changes, and the layers read these on every forward.
        starts = np.cumsum((0, *counts)).tolist()
        set_(self, "_node_counts", MappingProxyType(dict(zip(names, counts))))
        set_(self, "_node_slices", MappingProxyType(
            {name: slice(start, stop) for name, start, stop in zip(names, starts, starts[1:])}
        ))

    def edge_tensors(self, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """``(edge_index [2, E], edge_type [E])`` on ``device``, copied there once and cached.

        The layers call this on every forward, so a graph passed to them costs
        no copy after the first call. The tensors are shared: do not modify
        them in place (:attr:`edge_index` and :attr:`edge_type` return copies).
        """
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        cached = self._on_device.get(device)
        if cached is None:
            cached = (self._edge_index.to(device), self._edge_type.to(device))
            self._on_device[device] = cached
        return cached

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"CrossModalGraph is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"CrossModalGraph is immutable; cannot delete {name!r}")

    # ------------------------------------------------------------------ #
    # constructors from edge sets and exports
    # ------------------------------------------------------------------ #
    @classmethod
    def from_edge_index(
        cls,
        edge_index: Tensor | np.ndarray | Sequence[Sequence[int]],
        nodes: Mapping[str, int],
        *,
        vocabulary: Sequence[str] | None = None,
        k: int | None = None,
        beta: float | None = None,
        seed: int | None = None,
        order: str | None = None,
        ring_order: Tensor | Sequence[int] | None = None,
    ) -> CrossModalGraph:
        r"""Build a graph from an arbitrary symmetric edge set.

        Args:
            edge_index (LongTensor ``[2, E]``): both directions of every edge,
                in any column order.
            nodes (Mapping[str, int]): modality -> node count (0 allowed,
                at least 1 node in total); node ids are blocked in this order.
            vocabulary (Sequence[str], optional): the ordered relation
                vocabulary, containing every modality of ``nodes``; relation
                ids are ``voc(source) * V + voc(target)``.  (default:
                :obj:`None`, the modalities of ``nodes`` in order)
            k, beta, seed, order: optional metadata (shown by ``repr``).
            ring_order (LongTensor ``[N]``, optional): node id at each ring
                position (used by :func:`plot_graph`); identity by default.

        Raises:
            ValueError: if an index is out of range, an edge is missing its
                reverse, an edge is repeated, self loops are on some but
                not all nodes, or a modality of ``nodes`` is not in
                ``vocabulary``.
        """
        return cls(
            edge_index, nodes, vocabulary=vocabulary, k=k, beta=beta, seed=seed, order=order, ring_order=ring_order
        )

    # Inverses of the exports below; see :mod:`wsfusion.graphs._formats`.
    from_dense_mask = classmethod(_formats.from_dense_mask)
    from_scipy = classmethod(_formats.from_scipy)
    from_networkx = classmethod(_formats.from_networkx)
    from_pyg = classmethod(_formats.from_pyg)
    from_hetero = classmethod(_formats.from_hetero)

    # ------------------------------------------------------------------ #
    # read-only properties
    # ------------------------------------------------------------------ #
    @property
    def edge_index(self) -> Tensor:
        """LongTensor ``[2, 2E + L]``: row 0 source, row 1 target, sorted by target then source (a copy)."""
        return self._edge_index.clone()

    @property
    def num_nodes(self) -> int:
        """Total number of nodes ``N``."""
        return int(self._node_modality.numel())

    @property
    def num_edges(self) -> int:
        """Number of undirected edges, self loops excluded."""
        return (self._edge_index.size(1) - self.num_self_loops) // 2

    @property
    def num_self_loops(self) -> int:
        """``N`` when built with ``self_loops=True``, else 0."""
        return self.num_nodes if self._self_loops else 0

    @property
    def self_loops(self) -> bool:
        return self._self_loops

    @property
    def modalities(self) -> tuple[str, ...]:
        """The graph's own modalities (the keys of ``nodes``, 0-node ones included) in node-id order."""
        return self._modalities

    @property
    def vocabulary(self) -> tuple[str, ...]:
        r"""The ordered relation vocabulary :math:`(v_0, \dots, v_{V-1})`: a superset of :attr:`modalities`.

        :attr:`node_modality`, :attr:`edge_type` and :attr:`relation_names`
        index it.  It is :attr:`modalities` unless the graph was built with
        ``vocabulary=...``.
        """
        return self._vocabulary

    @property
    def node_counts(self) -> Mapping[str, int]:
        """Read-only mapping modality -> number of nodes (built once; the same object on every access)."""
        return self._node_counts

    @property
    def node_slices(self) -> Mapping[str, slice]:
        """Read-only mapping modality -> ``slice`` of its (contiguous) node ids (built once; the same object
        on every access)."""
        return self._node_slices

    @property
    def node_modality(self) -> Tensor:
        """LongTensor ``[N]``: the :attr:`vocabulary` index of every node's modality (a copy).

        ``vocabulary[node_modality[i]]`` is node ``i``'s modality; this equals
        the index into :attr:`modalities` only with the default vocabulary.
        """
        return self._node_modality.clone()

    @property
    def num_relations(self) -> int:
        """``V ** 2``: one relation per ordered (source, target) pair of :attr:`vocabulary` entries."""
        return len(self._vocabulary) ** 2

    def relation_ids(self, edge_index: Tensor) -> Tensor:
        """``[E]`` relation ids of any edge set over this graph's nodes (e.g. a rewired or learned one),
        by the same rule as :attr:`edge_type`."""
        return relation_ids(edge_index, self._node_modality.to(edge_index.device), len(self._vocabulary))

    @property
    def relation_names(self) -> list[tuple[str, str]]:
        """``relation_names[r]`` is the (source, target) modality pair of relation id ``r`` (``V ** 2`` pairs)."""
        return [(s, d) for s in self._vocabulary for d in self._vocabulary]

    @property
    def edge_type(self) -> Tensor:
        """LongTensor ``[2E + L]``: ``voc(source) * V + voc(target)`` per edge, in ``[0, V ** 2)`` (a copy)."""
        return self._edge_type.clone()

    @property
    def is_cross_modal(self) -> Tensor:
        """BoolTensor ``[2E + L]``: whether the two endpoints belong to different modalities."""
        nm = self._node_modality
        return nm[self._edge_index[0]] != nm[self._edge_index[1]]

    @property
    def ring_order(self) -> Tensor:
        """LongTensor ``[N]``: node id at each ring position (identity for the blocked order)."""
        return self._ring_order.clone()

    @property
    def k(self) -> int | None:
        return self._k

    @property
    def beta(self) -> float | None:
        return self._beta

    @property
    def seed(self) -> int | None:
        """The seed used (drawn and recorded when the graph was built with ``seed=None``)."""
        return self._seed

    @property
    def order(self) -> str | None:
        return self._order

    # ------------------------------------------------------------------ #
    # exports and metrics: free functions over the public attributes, bound as methods
    # ------------------------------------------------------------------ #
    to_dense_mask = _formats.to_dense_mask
    to_scipy = _formats.to_scipy
    to_networkx = _formats.to_networkx
    to_pyg = _formats.to_pyg
    to_hetero = _formats.to_hetero
    stats = metrics.stats

    # ------------------------------------------------------------------ #
    # dunder
    # ------------------------------------------------------------------ #
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CrossModalGraph):
            return NotImplemented
        return (
            self._modalities == other._modalities
            and self._counts == other._counts
            and self._vocabulary == other._vocabulary
            and torch.equal(self._edge_index, other._edge_index)
        )

    def __hash__(self) -> int:
        return hash((self._modalities, self._counts, self._vocabulary, self._edge_index.size(1)))

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # __setattr__ is blocked, so pickle/copy rebuild through the constructor.
        return (
            _rebuild,
            (
                self._edge_index, dict(self.node_counts), self._k, self._beta, self._seed, self._order,
                self._ring_order, self._vocabulary,
            ),
        )

    def __repr__(self) -> str:
        mods = ", ".join(f"{m}={n}" for m, n in zip(self._modalities, self._counts))
        loops = ", self_loops=True" if self._self_loops else ""
        vocab = f", vocabulary={self._vocabulary}" if self._vocabulary != self._modalities else ""
        return (
            f"{type(self).__name__}({mods}; N={self.num_nodes}, E={self.num_edges}, "
            f"k={self._k}, beta={self._beta}, order={self._order!r}, seed={self._seed}{loops}{vocab})"
        )


def _rebuild(edge_index, nodes, k, beta, seed, order, ring_order, vocabulary=None):  # noqa: ANN001, ANN202
    # ``vocabulary`` is optional so that graphs pickled before it existed still load.
    return CrossModalGraph(
        edge_index, nodes, vocabulary=vocabulary, k=k, beta=beta, seed=seed, order=order, ring_order=ring_order
    )

