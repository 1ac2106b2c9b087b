r"""Watts-Strogatz cross-modal graphs: construction, exports and metrics.

Every modality contributes a block of nodes (feature channels, segments or
tokens).  The nodes are laid out on a ring, each node is joined to its ``k``
nearest ring neighbours, and every ring edge is rewired with probability
``beta`` (Watts & Strogatz, 1998).  The result is a :class:`CrossModalGraph`
whose edges carry the sparse cross-modal fusion of the message-passing layers.

Node ids are **always blocked by modality** (the first modality owns nodes
``0 .. n_0 - 1``, the next one the following block, ...), so features can be
concatenated modality after modality.  ``order`` only changes where the nodes
sit on the ring before the edges are drawn:

* ``"blocked"``: ring position ``p`` holds node ``p``; the ring runs modality
  after modality, so cross-modal edges appear only at the few block
  boundaries and through rewiring.  This reproduces
  ``networkx.watts_strogatz_graph(N, k, beta, seed=seed)`` edge for edge.
* ``"interleaved"``: modalities alternate around the ring, proportionally
  when their sizes differ, so cross-modal edges exist even at ``beta = 0``.
"""

from __future__ import annotations

import math
import numbers
import random
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:  # pragma: no cover - imports for annotations only
    import networkx as nx
    import scipy.sparse
    from torch_geometric.data import Data, HeteroData

__all__ = ["CrossModalGraph", "ws_cross_modal_graph", "token_graph", "ORDERS"]

#: Ring layouts understood by :func:`ws_cross_modal_graph`.
ORDERS = ("blocked", "interleaved")

#: Relation name used for every edge type of :meth:`CrossModalGraph.to_hetero`.
HETERO_RELATION = "ws"


# --------------------------------------------------------------------------- #
# argument validation
# --------------------------------------------------------------------------- #
def _is_int(value: Any) -> bool:
    # bool is an Integral, but ``True`` nodes or ``k=True`` is always a mistake.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_nodes(nodes: Any) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Validate ``nodes`` and return (names, counts) in the mapping's order."""
    if not isinstance(nodes, Mapping) or len(nodes) == 0:
        got = type(nodes).__name__ if not isinstance(nodes, Mapping) else "an empty mapping"
        raise ValueError(f"nodes must be a non-empty mapping modality -> node count, got {got}")
    names: list[str] = []
    counts: list[int] = []
    for name, count in nodes.items():
        if not isinstance(name, str):
            raise ValueError(f"modality names must be strings, got {name!r} ({type(name).__name__})")
        if not name:
            raise ValueError("modality names must be non-empty strings, got ''")
        if not _is_int(count):
            raise ValueError(
                f"modality {name!r} must have an integer node count, got {count!r} "
                f"({type(count).__name__})"
            )
        if count < 1:
            raise ValueError(f"modality {name!r} has {int(count)} nodes; every modality needs at least 1")
        names.append(name)
        counts.append(int(count))
    return tuple(names), tuple(counts)


def _check_k(k: Any, num_nodes: int) -> int:
    if not _is_int(k):
        raise ValueError(f"k must be an integer, got {k!r} ({type(k).__name__})")
    k = int(k)
    if k < 2:
        raise ValueError(f"k must be at least 2 (each node joins its k nearest ring neighbours), got {k}")
    if k % 2:
        raise ValueError(
            f"k must be even (got {k}): networkx.watts_strogatz_graph would silently use k={k - 1}"
        )
    if k >= num_nodes:
        raise ValueError(f"k={k} must be smaller than the number of nodes N={num_nodes}")
    return k


def _check_beta(beta: Any) -> float:
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real):
        raise ValueError(f"beta must be a finite number in [0, 1], got {beta!r} ({type(beta).__name__})")
    beta = float(beta)
    if not math.isfinite(beta) or not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be a finite number in [0, 1], got {beta}")
    return beta


def _check_seed(seed: Any) -> int:
    if seed is None:
        # A fresh graph, but with its seed recorded so it can be rebuilt.
        return random.SystemRandom().randrange(2**32)
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    return int(seed)


def _check_order(order: Any) -> str:
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    return order


def interleaved_ring_order(counts: Sequence[int]) -> Tensor:
    r"""Ring layout that alternates modalities proportionally to their sizes.

    The :math:`j`-th node of a modality with :math:`n_m` nodes gets the key
    :math:`(j + 0.5) / n_m`; ring positions follow the keys in increasing
    order (ties broken by modality order).  Equal sizes give the plain
    round-robin ``a b c a b c ...``; unequal sizes spread every modality
    evenly, so a node at fraction :math:`x` of its own block sits within
    :math:`M` positions of :math:`x N` on the ring (which aligns tokens by
    relative time when the nodes are sequence tokens).

    Args:
        counts (Sequence[int]): nodes per modality, in modality order.

    Returns:
        LongTensor ``[N]``: the node id at each ring position.
    """
    keys: list[tuple[float, int, int]] = []
    start = 0
    for m, n in enumerate(counts):
        keys.extend(((j + 0.5) / n, m, start + j) for j in range(n))
        start += n
    keys.sort()
    return torch.tensor([node for _, _, node in keys], dtype=torch.long)


# --------------------------------------------------------------------------- #
# the graph
# --------------------------------------------------------------------------- #
class CrossModalGraph:
    r"""An immutable undirected graph whose nodes belong to named modalities.

    Built by :func:`ws_cross_modal_graph` (or :func:`token_graph`), or from any
    symmetric edge set with :meth:`from_edge_index` (learned or rewired
    topologies).  Node ids are blocked by modality: modality ``m`` owns the
    contiguous range ``node_slices[m]``.

    Edges are stored once per direction in ``edge_index`` (row 0 source, row
    1 target), sorted by target then source, so an undirected graph with
    :math:`E` edges and :math:`L` self loops has ``edge_index.size(1)``
    :math:`= 2E + L`.  Each directed edge has a relation id

    .. math::
        \mathrm{edge\_type}(s \to t) = \mathrm{mod}(s) \cdot M + \mathrm{mod}(t),

    one per ordered modality pair, :math:`M^2` in all (names in
    :attr:`relation_names`).

    Immutability: there are no setters, and every tensor property returns a
    fresh copy, so ``graph.edge_index[0, 0] = 5`` cannot change the graph
    (copies cost :math:`O(E)`; read a property once and keep the result in
    hot loops).  Two graphs are ``==`` when their modalities, node counts and
    edge sets agree; ``k``, ``beta``, ``seed``, ``order`` and the ring layout
    are metadata and do not take part.

    Example:
        >>> g = ws_cross_modal_graph({"visual": 64, "text": 64, "audio": 64}, k=6, beta=0.3, seed=42)
        >>> g.num_nodes, g.num_edges, tuple(g.edge_index.shape)
        (192, 576, (2, 1152))
        >>> g.relation_names[1]
        ('visual', 'text')
    """

    __slots__ = (
        "_modalities",
        "_counts",
        "_edge_index",
        "_ring_order",
        "_node_modality",
        "_edge_type",
        "_k",
        "_beta",
        "_seed",
        "_order",
        "_self_loops",
    )

    def __init__(
        self,
        edge_index: Tensor,
        nodes: Mapping[str, int],
        *,
        k: int | None = None,
        beta: float | None = None,
        seed: int | None = None,
        order: str | None = None,
        ring_order: Tensor | Sequence[int] | None = None,
        _validated: bool = False,
    ) -> None:
        names, counts = _check_nodes(nodes)
        num_nodes = sum(counts)
        if _validated:
            ei = edge_index
        else:
            ei = _canonical_edge_index(edge_index, num_nodes)
        loops = int((ei[0] == ei[1]).sum())
        if loops not in (0, num_nodes):
            raise ValueError(
                f"self loops must be on every node or on none: found {loops} of {num_nodes}"
            )
        if ring_order is None:
            ring = torch.arange(num_nodes)
        else:
            ring = torch.as_tensor(ring_order, dtype=torch.long).flatten().clone()
            if ring.numel() != num_nodes or not torch.equal(ring.sort().values, torch.arange(num_nodes)):
                raise ValueError(f"ring_order must be a permutation of 0..{num_nodes - 1}")
        if order is not None:
            _check_order(order)
        node_modality = torch.repeat_interleave(
            torch.arange(len(counts)), torch.tensor(counts, dtype=torch.long)
        )
        set_ = object.__setattr__
        set_(self, "_modalities", names)
        set_(self, "_counts", counts)
        set_(self, "_edge_index", ei)
        set_(self, "_ring_order", ring)
        set_(self, "_node_modality", node_modality)
        set_(self, "_edge_type", node_modality[ei[0]] * len(names) + node_modality[ei[1]])
        set_(self, "_k", k)
        set_(self, "_beta", beta)
        set_(self, "_seed", seed)
        set_(self, "_order", order)
        set_(self, "_self_loops", loops > 0)

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
        k: int | None = None,
        beta: float | None = None,
        seed: int | None = None,
        order: str | None = None,
        ring_order: Tensor | Sequence[int] | None = None,
    ) -> "CrossModalGraph":
        r"""Build a graph from an arbitrary symmetric edge set.

        Args:
            edge_index (LongTensor ``[2, E]``): both directions of every edge,
                in any column order.
            nodes (Mapping[str, int]): modality -> node count; node ids are
                blocked in this order.
            k, beta, seed, order: optional metadata (shown by ``repr``).
            ring_order (LongTensor ``[N]``, optional): node id at each ring
                position (used by :func:`plot_graph`); identity by default.

        Raises:
            ValueError: if an index is out of range, an edge is missing its
                reverse, an edge is repeated, or self loops are on some but
                not all nodes.
        """
        return cls(edge_index, nodes, k=k, beta=beta, seed=seed, order=order, ring_order=ring_order)

    @classmethod
    def from_dense_mask(cls, mask: Tensor | np.ndarray, nodes: Mapping[str, int], **meta: Any) -> "CrossModalGraph":
        """Inverse of :meth:`to_dense_mask` (any nonzero entry ``mask[t, s]`` is an edge ``s -> t``)."""
        mask = torch.as_tensor(mask)
        if mask.dim() != 2 or mask.size(0) != mask.size(1):
            raise ValueError(f"mask must be a square [N, N] matrix, got shape {tuple(mask.shape)}")
        target, source = mask.nonzero(as_tuple=True)
        return cls(torch.stack([source, target]), nodes, **meta)

    @classmethod
    def from_scipy(cls, adj: "scipy.sparse.sparray | scipy.sparse.spmatrix", nodes: Mapping[str, int], **meta: Any) -> "CrossModalGraph":
        """Inverse of :meth:`to_scipy` (explicit zeros are not edges)."""
        coo = adj.tocoo()
        keep = coo.data != 0
        ei = torch.from_numpy(np.stack([coo.col[keep], coo.row[keep]]).astype(np.int64))
        return cls(ei, nodes, **meta)

    @classmethod
    def from_networkx(cls, graph: "nx.Graph", nodes: Mapping[str, int] | None = None, **meta: Any) -> "CrossModalGraph":
        """Inverse of :meth:`to_networkx`.

        Nodes must be labelled ``0 .. N-1``.  ``nodes`` and the metadata
        default to those stored in ``graph.graph`` by :meth:`to_networkx`.
        """
        info = graph.graph
        if nodes is None:
            if "node_counts" not in info:
                raise ValueError("nodes is required: the networkx graph carries no 'node_counts'")
            nodes = dict(info["node_counts"])
        for key in ("k", "beta", "seed", "order", "ring_order"):
            if key not in meta and info.get(key) is not None:
                meta[key] = info[key]
        num_nodes = graph.number_of_nodes()
        if set(graph.nodes) != set(range(num_nodes)):
            raise ValueError("networkx nodes must be labelled 0..N-1")
        pairs = np.array(list(graph.edges()), dtype=np.int64).reshape(-1, 2).T
        both = np.concatenate([pairs, pairs[::-1]], axis=1)
        both = np.unique(both, axis=1)  # a self loop appears twice above
        return cls(torch.from_numpy(both), nodes, **meta)

    @classmethod
    def from_pyg(cls, data: "Data", nodes: Mapping[str, int] | None = None, **meta: Any) -> "CrossModalGraph":
        """Inverse of :meth:`to_pyg`.

        ``nodes`` defaults to ``data.modalities`` with counts taken from
        ``data.node_modality`` (which must be blocked, as :meth:`to_pyg` writes it).
        """
        if nodes is None:
            names = list(data.modalities)
            nm = data.node_modality
            if nm.numel() > 1 and bool((nm[1:] < nm[:-1]).any()):
                raise ValueError("data.node_modality must be blocked (non-decreasing)")
            counts = torch.bincount(nm, minlength=len(names)).tolist()
            nodes = dict(zip(names, counts))
        return cls(data.edge_index, nodes, **meta)

    @classmethod
    def from_hetero(cls, data: "HeteroData", **meta: Any) -> "CrossModalGraph":
        """Inverse of :meth:`to_hetero`: node types in order become the modalities."""
        names = list(data.node_types)
        counts = [int(data[name].num_nodes) for name in names]
        offsets = dict(zip(names, np.cumsum([0] + counts[:-1]).tolist()))
        parts = []
        for src, rel, dst in data.edge_types:
            if rel != HETERO_RELATION:
                continue
            ei = data[src, rel, dst].edge_index
            parts.append(torch.stack([ei[0] + offsets[src], ei[1] + offsets[dst]]))
        ei = torch.cat(parts, dim=1) if parts else torch.empty(2, 0, dtype=torch.long)
        return cls(ei, dict(zip(names, counts)), **meta)

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
        """Modality names in node-id order."""
        return self._modalities

    @property
    def node_counts(self) -> Mapping[str, int]:
        """Read-only mapping modality -> number of nodes."""
        return MappingProxyType(dict(zip(self._modalities, self._counts)))

    @property
    def node_slices(self) -> Mapping[str, slice]:
        """Read-only mapping modality -> ``slice`` of its (contiguous) node ids."""
        out, start = {}, 0
        for name, n in zip(self._modalities, self._counts):
            out[name] = slice(start, start + n)
            start += n
        return MappingProxyType(out)

    @property
    def node_modality(self) -> Tensor:
        """LongTensor ``[N]``: modality index of every node (a copy)."""
        return self._node_modality.clone()

    @property
    def num_relations(self) -> int:
        """``M ** 2``: one relation per ordered (source, target) modality pair."""
        return len(self._modalities) ** 2

    @property
    def relation_names(self) -> list[tuple[str, str]]:
        """``relation_names[r]`` is the (source, target) modality pair of relation id ``r``."""
        return [(s, d) for s in self._modalities for d in self._modalities]

    @property
    def edge_type(self) -> Tensor:
        """LongTensor ``[2E + L]``: ``mod(source) * M + mod(target)`` per edge (a copy)."""
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
    # exports
    # ------------------------------------------------------------------ #
    def to_dense_mask(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """Dense ``[N, N]`` mask with ``mask[target, source] = 1`` (the notebook's orientation)."""
        mask = torch.zeros(self.num_nodes, self.num_nodes, dtype=dtype)
        mask[self._edge_index[1], self._edge_index[0]] = 1
        return mask

    def to_scipy(self) -> "scipy.sparse.csr_array":
        """Symmetric CSR adjacency ``A[target, source] = 1`` (float32)."""
        import scipy.sparse

        src, dst = self._edge_index.numpy()
        data = np.ones(src.shape[0], dtype=np.float32)
        return scipy.sparse.csr_array((data, (dst, src)), shape=(self.num_nodes, self.num_nodes))

    def to_networkx(self) -> "nx.Graph":
        """Undirected ``networkx.Graph``.

        Every node has a ``"modality"`` attribute; ``G.graph`` holds the
        modalities, node counts and metadata, so :meth:`from_networkx` needs
        no other argument.  Self loops are kept as ``(i, i)`` edges.
        """
        import networkx as nx

        g = nx.Graph(
            modalities=self._modalities,
            node_counts=dict(self.node_counts),
            k=self._k,
            beta=self._beta,
            seed=self._seed,
            order=self._order,
            ring_order=self._ring_order.tolist(),
        )
        names = self._modalities
        g.add_nodes_from((i, {"modality": names[m]}) for i, m in enumerate(self._node_modality.tolist()))
        src, dst = self._edge_index
        upper = src <= dst
        g.add_edges_from(zip(src[upper].tolist(), dst[upper].tolist()))
        return g

    def to_pyg(self) -> "Data":
        """``torch_geometric.data.Data`` with ``edge_index``, ``edge_type``, ``node_modality``,
        ``num_nodes`` and ``modalities`` (list of names)."""
        from torch_geometric.data import Data

        return Data(
            edge_index=self.edge_index,
            edge_type=self.edge_type,
            node_modality=self.node_modality,
            num_nodes=self.num_nodes,
            modalities=list(self._modalities),
        )

    def to_hetero(self) -> "HeteroData":
        """``torch_geometric.data.HeteroData``: one node type per modality and one edge
        type ``(src, "ws", dst)`` per ordered modality pair, all ``M ** 2`` present (some
        may be empty) in relation-id order; indices are local to each node type."""
        from torch_geometric.data import HeteroData

        data = HeteroData()
        for name, n in zip(self._modalities, self._counts):
            data[name].num_nodes = n
        offsets = torch.tensor([s.start for s in self.node_slices.values()])
        ei, et = self._edge_index, self._edge_type
        for r, (src, dst) in enumerate(self.relation_names):
            sel = ei[:, et == r]
            m_src, m_dst = divmod(r, len(self._modalities))
            data[src, HETERO_RELATION, dst].edge_index = torch.stack(
                [sel[0] - offsets[m_src], sel[1] - offsets[m_dst]]
            )
        return data

    # ------------------------------------------------------------------ #
    # metrics
    # ------------------------------------------------------------------ #
    def stats(self, small_world: bool = False, *, path_length: bool = True, niter: int = 1, nrand: int = 2) -> dict[str, Any]:
        r"""Structural statistics, JSON-serialisable.

        Computed on the undirected simple graph *without* self loops
        (:meth:`to_scipy` minus the diagonal) with scipy; the test-suite checks
        every value against networkx.

        Returns:
            dict with

            * ``num_nodes``, ``num_edges`` (undirected, self loops excluded),
              ``num_self_loops``;
            * ``density`` :math:`= 2E / (N (N - 1))`;
            * ``clustering``: average local clustering coefficient
              (``networkx.average_clustering``);
            * ``connected`` and ``num_components``;
            * ``path_length``: average shortest path length
              (``networkx.average_shortest_path_length``) when connected,
              ``None`` when not (it would be infinite) or when
              ``path_length=False`` (it costs :math:`O(N E)`);
            * ``cross_modal_fraction``: cross-modal share of the undirected
              edges (``None`` without edges);
            * ``pair_edges``: undirected edge counts per unordered modality
              pair, keyed ``"a-b"`` in modality order (``"visual-visual"``,
              ``"visual-text"``, ...);
            * with ``small_world=True`` also ``sigma`` and ``omega``
              (``networkx.sigma`` / ``networkx.omega`` with ``niter``,
              ``nrand`` and ``seed=0``; ``None`` when disconnected).  **Slow**:
              both build ``nrand`` rewired reference graphs in pure Python
              (about 40 s at N=192 with the defaults ``niter=1, nrand=2``;
              networkx's own defaults ``niter=100, nrand=10`` take more than
              15 minutes there).  sigma > 1 and omega near 0 mean small-world.
        """
        import scipy.sparse
        from scipy.sparse import csgraph

        n = self.num_nodes
        src, dst = self._edge_index
        keep = src != dst
        s, d = src[keep].numpy(), dst[keep].numpy()
        adj = scipy.sparse.csr_array((np.ones(s.shape[0], dtype=np.float64), (d, s)), shape=(n, n))
        num_edges = int(s.shape[0] // 2)

        deg = np.asarray(adj.sum(axis=1)).ravel()
        # Triangles through each node: diag(A^3) / 2, via (A @ A) * A row sums.
        tri = np.asarray((adj @ adj).multiply(adj).sum(axis=1)).ravel() / 2.0
        possible = deg * (deg - 1) / 2.0
        local = np.divide(tri, possible, out=np.zeros(n), where=possible > 0)
        clustering = float(local.mean()) if n else 0.0

        num_components, _ = csgraph.connected_components(adj, directed=False)
        connected = bool(num_components == 1)
        apl = None
        if path_length and connected:
            apl = 0.0 if n == 1 else _average_path_length(adj)

        nm = self._node_modality.numpy()
        ms, md = nm[s], nm[d]
        upper = s < d
        names = self._modalities
        pair_edges = {}
        for i in range(len(names)):
            for j in range(i, len(names)):
                cnt = int(np.sum(upper & (((ms == i) & (md == j)) | ((ms == j) & (md == i)))))
                pair_edges[f"{names[i]}-{names[j]}"] = cnt
        cross = int(np.sum(upper & (ms != md)))

        out: dict[str, Any] = {
            "num_nodes": n,
            "num_edges": num_edges,
            "num_self_loops": self.num_self_loops,
            "density": 0.0 if n < 2 else 2.0 * num_edges / (n * (n - 1)),
            "clustering": clustering,
            "path_length": apl,
            "connected": connected,
            "num_components": int(num_components),
            "cross_modal_fraction": cross / num_edges if num_edges else None,
            "pair_edges": pair_edges,
        }
        if small_world:
            out["sigma"] = out["omega"] = None
            if connected and n > 3:
                import networkx as nx

                g = self.to_networkx()
                g.remove_edges_from(nx.selfloop_edges(g))
                out["sigma"] = float(nx.sigma(g, niter=niter, nrand=nrand, seed=0))
                out["omega"] = float(nx.omega(g, niter=niter, nrand=nrand, seed=0))
        return out

    # ------------------------------------------------------------------ #
    # dunder
    # ------------------------------------------------------------------ #
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CrossModalGraph):
            return NotImplemented
        return (
            self._modalities == other._modalities
            and self._counts == other._counts
            and torch.equal(self._edge_index, other._edge_index)
        )

    def __hash__(self) -> int:
        return hash((self._modalities, self._counts, self._edge_index.size(1)))

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # __setattr__ is blocked, so pickle/copy rebuild through the constructor.
        return (_rebuild, (self._edge_index, dict(self.node_counts), self._k, self._beta, self._seed, self._order, self._ring_order))

    def __repr__(self) -> str:
        mods = ", ".join(f"{m}={n}" for m, n in zip(self._modalities, self._counts))
        loops = ", self_loops=True" if self._self_loops else ""
        return (
            f"{type(self).__name__}({mods}; N={self.num_nodes}, E={self.num_edges}, "
            f"k={self._k}, beta={self._beta}, order={self._order!r}, seed={self._seed}{loops})"
        )


def _rebuild(edge_index, nodes, k, beta, seed, order, ring_order):  # noqa: ANN001, ANN202
    return CrossModalGraph(edge_index, nodes, k=k, beta=beta, seed=seed, order=order, ring_order=ring_order)


def _canonical_edge_index(edge_index: Any, num_nodes: int) -> Tensor:
    """Validate an edge set and sort it by target then source."""
    ei = torch.as_tensor(np.asarray(edge_index) if not isinstance(edge_index, Tensor) else edge_index)
    if ei.dim() != 2 or ei.size(0) != 2:
        raise ValueError(f"edge_index must have shape [2, E], got {tuple(ei.shape)}")
    if ei.is_floating_point() or ei.dtype == torch.bool or ei.is_complex():
        raise ValueError(f"edge_index must hold integers, got {ei.dtype}")
    ei = ei.detach().to(device="cpu", dtype=torch.long)
    if ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= num_nodes):
        raise ValueError(
            f"edge_index has node ids in [{int(ei.min())}, {int(ei.max())}], outside 0..{num_nodes - 1}"
        )
    key = ei[1] * num_nodes + ei[0]
    key, perm = key.sort()
    if key.numel() > 1 and bool((key[1:] == key[:-1]).any()):
        dup = int(key[1:][key[1:] == key[:-1]][0])
        raise ValueError(f"edge_index repeats the edge {dup % num_nodes} -> {dup // num_nodes}")
    ei = ei[:, perm]
    reverse = ei[0] * num_nodes + ei[1]  # key of the reversed edge
    if not torch.equal(reverse.sort().values, key):
        pos = torch.searchsorted(key, reverse)
        missing = (pos >= key.numel()) | (key[pos.clamp(max=key.numel() - 1)] != reverse)
        i = int(missing.nonzero()[0])
        raise ValueError(
            f"edge_index is not symmetric: {int(ei[0, i])} -> {int(ei[1, i])} has no reverse edge"
        )
    return ei.contiguous()


def _average_path_length(adj: "scipy.sparse.csr_array", chunk: int = 256) -> float:
    # BFS from every source in C (scipy), a chunk of sources at a time so memory
    # stays O(chunk * N) instead of O(N^2); exact integer sum, like networkx.
    from scipy.sparse import csgraph

    n = adj.shape[0]
    total = 0
    for start in range(0, n, chunk):
        dist = csgraph.shortest_path(adj, directed=False, unweighted=True, indices=np.arange(start, min(n, start + chunk)))
        total += int(dist.sum())
    return total / (n * (n - 1))


# --------------------------------------------------------------------------- #
# builders
# --------------------------------------------------------------------------- #
def ws_cross_modal_graph(
    nodes: Mapping[str, int],
    k: int = 4,
    beta: float = 0.3,
    *,
    seed: int | None = 0,
    order: str = "blocked",
    self_loops: bool = False,
) -> CrossModalGraph:
    r"""Watts-Strogatz small-world graph over the nodes of several modalities.

    The :math:`N = \sum_m n_m` nodes are placed on a ring (see ``order``),
    every node is joined to its :math:`k/2` nearest ring neighbours on each
    side, and then each ring edge :math:`(u, v)` is replaced with probability
    :math:`\beta` by :math:`(u, w)`, :math:`w` uniform among nodes that are
    not :math:`u` and not already neighbours.  Rewiring keeps the edge count,
    so the graph always has :math:`N k / 2` undirected edges.  The random
    draws are those of ``networkx.watts_strogatz_graph(N, k, beta, seed)``
    (which this calls), so ``order="blocked"`` reproduces its edge set
    exactly (the notebook's mask for ``{"visual": 64, "text": 64, "audio":
    64}, k=6, beta=0.3, seed=42``).

    Node ids are always blocked by modality; ``order="interleaved"`` only
    places the nodes alternately on the ring (:func:`interleaved_ring_order`),
    so neighbouring ring positions belong to different modalities and
    cross-modal edges exist already at :math:`\beta = 0`.  Mean cross-modal
    edge fraction, 3 x 64 nodes, ``k=6`` (20 seeds; see the README):

    ============ ===== ===== ===== ===== =====
    beta          0     0.1   0.3   0.5   1
    ============ ===== ===== ===== ===== =====
    blocked       0.031 0.095 0.223 0.361 0.683
    interleaved   0.667 0.666 0.669 0.673 0.672
    ============ ===== ===== ===== ===== =====

    Args:
        nodes (Mapping[str, int]): ordered mapping modality -> node count
            (counts may differ).
        k (int): even ring degree, :math:`2 \le k < N`.
        beta (float): rewiring probability in :math:`[0, 1]`.
        seed (int, optional): random seed; the same seed gives the same graph.
            ``None`` draws a fresh seed, recorded as ``graph.seed``.
        order (str): ``"blocked"`` or ``"interleaved"`` ring layout.
        self_loops (bool): add an edge :math:`i \to i` on every node.

    Returns:
        CrossModalGraph

    Raises:
        ValueError: odd ``k`` (networkx would silently use ``k - 1``),
            ``k < 2``, ``k >= N``, ``beta`` not a finite number in [0, 1],
            an empty mapping, a modality with no nodes, a non-string name,
            a non-integer count, an unknown ``order`` or a bad ``seed``.

    Example:
        >>> g = ws_cross_modal_graph({"visual": 64, "text": 64, "audio": 64}, k=6, beta=0.3, seed=42)
        >>> import networkx as nx
        >>> ref = nx.watts_strogatz_graph(192, 6, 0.3, seed=42)
        >>> bool((g.to_dense_mask().numpy() == nx.to_numpy_array(ref)).all())
        True
    """
    import networkx as nx

    names, counts = _check_nodes(nodes)
    num_nodes = sum(counts)
    k = _check_k(k, num_nodes)
    beta = _check_beta(beta)
    order = _check_order(order)
    seed = _check_seed(seed)
    if not isinstance(self_loops, bool):
        raise ValueError(f"self_loops must be a bool, got {self_loops!r}")

    ring_graph = nx.watts_strogatz_graph(num_nodes, k, beta, seed=seed)
    pairs = np.fromiter(
        (x for edge in ring_graph.edges() for x in edge), dtype=np.int64, count=2 * ring_graph.number_of_edges()
    ).reshape(-1, 2)
    pairs = torch.from_numpy(pairs.T)
    if order == "interleaved":
        ring = interleaved_ring_order(counts)
        pairs = ring[pairs]
    else:
        ring = torch.arange(num_nodes)
    parts = [pairs, pairs.flip(0)]
    if self_loops:
        parts.append(torch.arange(num_nodes).repeat(2, 1))
    ei = torch.cat(parts, dim=1)
    ei = ei[:, (ei[1] * num_nodes + ei[0]).argsort()]
    return CrossModalGraph(
        ei,
        dict(zip(names, counts)),
        k=k,
        beta=beta,
        seed=seed,
        order=order,
        ring_order=ring,
        _validated=True,
    )


def token_graph(
    tokens: Mapping[str, int | Tensor],
    k: int = 4,
    beta: float = 0.3,
    *,
    seed: int | None = 0,
    order: str = "interleaved",
    self_loops: bool = False,
) -> CrossModalGraph:
    r"""Token-level cross-modal graph: one node per token of each modality.

    The same builder as :func:`ws_cross_modal_graph`, with token counts as
    node counts.  ``tokens`` maps a modality to its token count (e.g. 16
    image patches, 20 words, 25 audio frames) or to its token features
    ``[B, T, D]`` / ``[T, D]`` (the count is ``T = size(-2)``).  The default
    ``order="interleaved"`` spreads each modality evenly around the ring, so
    token :math:`j` of a sequence of length :math:`T_m` sits next to the
    tokens of the other modalities at the same relative position
    :math:`(j + 0.5) / T_m`: at small ``beta`` a token talks to its
    neighbours in time in every modality (the ring closes, so the last
    tokens also meet the first ones); rewiring adds long-range links.

    Node ids are blocked, so the node features are the token sequences
    concatenated modality after modality (``torch.cat([x_visual, x_text,
    x_audio], dim=-2)`` once projected to a common width).

    Example:
        >>> g = token_graph({"visual": 16, "text": 20, "audio": 25}, k=4, beta=0.2, seed=0)
        >>> g.num_nodes, g.num_edges
        (61, 122)
    """
    counts: dict[str, Any] = {}
    if not isinstance(tokens, Mapping):
        raise ValueError(
            f"tokens must be a non-empty mapping modality -> token count or features, got {type(tokens).__name__}"
        )
    for name, value in tokens.items():
        if isinstance(value, Tensor):
            if value.dim() < 2:
                raise ValueError(
                    f"token features of modality {name!r} must be [B, T, D] or [T, D], got shape {tuple(value.shape)}"
                )
            value = int(value.size(-2))
        counts[name] = value
    return ws_cross_modal_graph(counts, k, beta, seed=seed, order=order, self_loops=self_loops)
