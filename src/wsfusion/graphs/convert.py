r"""Conversions between :class:`~wsfusion.graphs.CrossModalGraph` and other graph formats.

PyG-style free functions, each the inverse of its partner:

=================================  ===================================
export                             import
=================================  ===================================
:func:`to_dense_mask`              :func:`from_dense_mask`
:func:`to_scipy`                   :func:`from_scipy`
:func:`to_networkx`                :func:`from_networkx`
:func:`to_pyg`                     :func:`from_pyg`
:func:`to_hetero`                  :func:`from_hetero`
(``graph.edge_index``)             :func:`from_edge_index`
=================================  ===================================

The methods ``CrossModalGraph.to_*`` / ``CrossModalGraph.from_*`` call
these.  networkx, scipy and torch_geometric are imported by the functions
that need them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from wsfusion.graphs.graph import CrossModalGraph

if TYPE_CHECKING:  # pragma: no cover - imports for annotations only
    import networkx as nx
    import scipy.sparse
    from torch_geometric.data import Data, HeteroData

__all__ = [
    "HETERO_RELATION",
    "from_dense_mask",
    "from_edge_index",
    "from_hetero",
    "from_networkx",
    "from_pyg",
    "from_scipy",
    "to_dense_mask",
    "to_hetero",
    "to_networkx",
    "to_pyg",
    "to_scipy",
]

#: Relation name used for every edge type of :func:`to_hetero`.
HETERO_RELATION = "ws"


# --------------------------------------------------------------------------- #
# exports
# --------------------------------------------------------------------------- #
def to_dense_mask(graph: CrossModalGraph, dtype: torch.dtype = torch.float32) -> Tensor:
    r"""Dense adjacency mask in the notebook's orientation.

    .. math::
        \mathrm{mask}[t, s] = \mathbb{1}[s \to t \in \mathcal{E}]

    Args:
        graph (CrossModalGraph): the graph.
        dtype (torch.dtype): dtype of the mask. (default: :obj:`torch.float32`)

    Shapes:
        - **output:** :math:`(N, N)`
    """
    ei = graph._edge_index
    mask = torch.zeros(graph.num_nodes, graph.num_nodes, dtype=dtype)
    mask[ei[1], ei[0]] = 1
    return mask


def to_scipy(graph: CrossModalGraph) -> scipy.sparse.csr_array:
    r"""Symmetric CSR adjacency :math:`A[t, s] = 1` for every edge :math:`s \to t` (float32, ``[N, N]``)."""
    import scipy.sparse

    src, dst = graph._edge_index.numpy()
    data = np.ones(src.shape[0], dtype=np.float32)
    return scipy.sparse.csr_array((data, (dst, src)), shape=(graph.num_nodes, graph.num_nodes))


def to_networkx(graph: CrossModalGraph) -> nx.Graph:
    """Undirected ``networkx.Graph``.

    Every node has a ``"modality"`` attribute; ``G.graph`` holds the
    modalities, node counts and metadata, so :func:`from_networkx` needs no
    other argument.  Self loops are kept as ``(i, i)`` edges.

    Args:
        graph (CrossModalGraph): the graph.
    """
    import networkx as nx

    g = nx.Graph(
        modalities=graph._modalities,
        node_counts=dict(graph.node_counts),
        k=graph._k,
        beta=graph._beta,
        seed=graph._seed,
        order=graph._order,
        ring_order=graph._ring_order.tolist(),
    )
    names = graph._modalities
    g.add_nodes_from((i, {"modality": names[m]}) for i, m in enumerate(graph._node_modality.tolist()))
    src, dst = graph._edge_index
    upper = src <= dst
    g.add_edges_from(zip(src[upper].tolist(), dst[upper].tolist()))
    return g


def to_pyg(graph: CrossModalGraph) -> Data:
    """``torch_geometric.data.Data`` with ``edge_index``, ``edge_type``, ``node_modality``,
    ``num_nodes`` and ``modalities`` (list of names)."""
    from torch_geometric.data import Data

    return Data(
        edge_index=graph.edge_index,
        edge_type=graph.edge_type,
        node_modality=graph.node_modality,
        num_nodes=graph.num_nodes,
        modalities=list(graph._modalities),
    )


def to_hetero(graph: CrossModalGraph) -> HeteroData:
    """``torch_geometric.data.HeteroData``: one node type per modality and one edge type
    ``(src, "ws", dst)`` per ordered modality pair, all ``M ** 2`` present (some may be
    empty) in relation-id order; indices are local to each node type."""
    from torch_geometric.data import HeteroData

    data = HeteroData()
    for name, n in zip(graph._modalities, graph._counts):
        data[name].num_nodes = n
    offsets = torch.tensor([s.start for s in graph.node_slices.values()])
    ei, et = graph._edge_index, graph._edge_type
    for r, (src, dst) in enumerate(graph.relation_names):
        sel = ei[:, et == r]
        m_src, m_dst = divmod(r, len(graph._modalities))
        data[src, HETERO_RELATION, dst].edge_index = torch.stack(
            [sel[0] - offsets[m_src], sel[1] - offsets[m_dst]]
        )
    return data


# --------------------------------------------------------------------------- #
# imports
# --------------------------------------------------------------------------- #
def from_edge_index(
    edge_index: Tensor | np.ndarray | Sequence[Sequence[int]],
    nodes: Mapping[str, int],
    **meta: Any,
) -> CrossModalGraph:
    """A graph from any symmetric edge set ``[2, E]``; same as :meth:`CrossModalGraph.from_edge_index`."""
    return CrossModalGraph(edge_index, nodes, **meta)


def from_dense_mask(mask: Tensor | np.ndarray, nodes: Mapping[str, int], **meta: Any) -> CrossModalGraph:
    """Inverse of :func:`to_dense_mask`: any nonzero ``mask[t, s]`` is an edge ``s -> t``.

    Args:
        mask (Tensor or ndarray): ``[N, N]``, symmetric.
        nodes (Mapping[str, int]): modality -> node count.
        **meta: ``k``, ``beta``, ``seed``, ``order``, ``ring_order``.
    """
    mask = torch.as_tensor(mask)
    if mask.dim() != 2 or mask.size(0) != mask.size(1):
        raise ValueError(f"mask must be a square [N, N] matrix, got shape {tuple(mask.shape)}")
    target, source = mask.nonzero(as_tuple=True)
    return CrossModalGraph(torch.stack([source, target]), nodes, **meta)


def from_scipy(
    adj: scipy.sparse.sparray | scipy.sparse.spmatrix, nodes: Mapping[str, int], **meta: Any
) -> CrossModalGraph:
    """Inverse of :func:`to_scipy` (``adj[t, s] != 0`` is an edge ``s -> t``; explicit zeros are not edges)."""
    coo = adj.tocoo()
    keep = coo.data != 0
    ei = torch.from_numpy(np.stack([coo.col[keep], coo.row[keep]]).astype(np.int64))
    return CrossModalGraph(ei, nodes, **meta)


def from_networkx(graph: nx.Graph, nodes: Mapping[str, int] | None = None, **meta: Any) -> CrossModalGraph:
    """Inverse of :func:`to_networkx`.

    Nodes must be labelled ``0 .. N-1``.  ``nodes`` and the metadata
    default to those stored in ``graph.graph`` by :func:`to_networkx`.
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
    return CrossModalGraph(torch.from_numpy(both), nodes, **meta)


def from_pyg(data: Data, nodes: Mapping[str, int] | None = None, **meta: Any) -> CrossModalGraph:
    """Inverse of :func:`to_pyg`.

    ``nodes`` defaults to ``data.modalities`` with counts taken from
    ``data.node_modality`` (which must be blocked, as :func:`to_pyg` writes it).
    """
    if nodes is None:
        names = list(data.modalities)
        nm = data.node_modality
        if nm.numel() > 1 and bool((nm[1:] < nm[:-1]).any()):
            raise ValueError("data.node_modality must be blocked (non-decreasing)")
        counts = torch.bincount(nm, minlength=len(names)).tolist()
        nodes = dict(zip(names, counts))
    return CrossModalGraph(data.edge_index, nodes, **meta)


def from_hetero(data: HeteroData, **meta: Any) -> CrossModalGraph:
    """Inverse of :func:`to_hetero`: node types in order become the modalities (``"ws"`` edge types only)."""
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
    return CrossModalGraph(ei, dict(zip(names, counts)), **meta)
