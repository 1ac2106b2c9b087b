r"""Conversions of a :class:`~wsfusion.graphs.CrossModalGraph` to and from other graph formats.

The one implementation behind the methods ``CrossModalGraph.to_*`` /
``CrossModalGraph.from_*`` and the free functions of
:mod:`wsfusion.graphs.convert` (which are these functions):

* the exports (``to_*``) are free functions over a graph's public
  attributes (:class:`~wsfusion.graphs._protocol.GraphLike`);
* the imports (``from_*``) take the class to build as their first argument
  ``cls``: :mod:`wsfusion.graphs.graph` binds them as classmethods, so this
  module never imports the class (no import circle).

networkx, scipy and torch_geometric are imported by the functions that need
them. Every export carries the relation vocabulary and every import reads it
back; the imports that take ``**meta`` also accept ``vocabulary=`` to set one.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from wsfusion._validation import is_int
from wsfusion.graphs._checks import check_nodes, check_vocabulary

if TYPE_CHECKING:  # pragma: no cover - imports for annotations only
    import networkx as nx
    import scipy.sparse
    from torch_geometric.data import Data, HeteroData

    from wsfusion.graphs._protocol import GraphLike

#: The graph class an import builds (``CrossModalGraph`` when bound as its classmethod).
GraphT = TypeVar("GraphT")

#: Relation name used for every edge type of :func:`to_hetero`.
HETERO_RELATION = "ws"


# --------------------------------------------------------------------------- #
# exports
# --------------------------------------------------------------------------- #
def to_dense_mask(graph: GraphLike, dtype: torch.dtype = torch.float32) -> Tensor:
    r"""Dense adjacency mask in the notebook's orientation.

    .. math::
        \mathrm{mask}[t, s] = \mathbb{1}[s \to t \in \mathcal{E}]

    Args:
        graph (CrossModalGraph): the graph.
        dtype (torch.dtype): dtype of the mask. (default: :obj:`torch.float32`)

    Shapes:
        - **output:** :math:`(N, N)`
    """
    ei = graph.edge_tensors()[0]
    mask = torch.zeros(graph.num_nodes, graph.num_nodes, dtype=dtype)
    mask[ei[1], ei[0]] = 1
    return mask


def to_scipy(graph: GraphLike) -> scipy.sparse.csr_array:
    r"""Symmetric CSR adjacency :math:`A[t, s] = 1` for every edge :math:`s \to t` (float32, ``[N, N]``)."""
    import scipy.sparse

    src, dst = graph.edge_tensors()[0].numpy()
    data = np.ones(src.shape[0], dtype=np.float32)
    return scipy.sparse.csr_array((data, (dst, src)), shape=(graph.num_nodes, graph.num_nodes))


def to_networkx(graph: GraphLike) -> nx.Graph:
    """Undirected ``networkx.Graph``.

    Nodes are labelled ``0 .. N-1`` (the node ids) and every node has a
    ``"modality"`` attribute; ``G.graph`` holds the modalities, node counts
    (0-node modalities included), vocabulary and metadata, so
    :func:`from_networkx` needs no other argument.  Self loops are kept as
    ``(i, i)`` edges.

    Args:
        graph (CrossModalGraph): the graph.
    """
    import networkx as nx

    g = nx.Graph(
        modalities=graph.modalities,
        vocabulary=graph.vocabulary,
        node_counts=dict(graph.node_counts),
        k=graph.k,
        beta=graph.beta,
        seed=graph.seed,
        order=graph.order,
        ring_order=graph.ring_order.tolist(),
    )
    vocab = graph.vocabulary
    g.add_nodes_from((i, {"modality": vocab[m]}) for i, m in enumerate(graph.node_modality.tolist()))
    src, dst = graph.edge_tensors()[0]
    upper = src <= dst
    g.add_edges_from(zip(src[upper].tolist(), dst[upper].tolist()))
    return g


def to_pyg(graph: GraphLike) -> Data:
    r"""A :class:`~wsfusion.graphs.pyg.CrossModalData` (a ``torch_geometric.data.Data``).

    Attributes: ``edge_index``, ``edge_type`` (ids
    :math:`\mathrm{voc}(s) V + \mathrm{voc}(t)`), ``node_modality``
    (vocabulary indices), ``num_nodes``, ``modalities`` (list of the graph's
    names) and ``vocabulary`` (tuple).  Graphs built with one vocabulary batch
    with ``Batch.from_data_list`` / ``DataLoader`` with their relation ids
    intact, whatever their modality sets; graphs of different vocabularies
    raise ``ValueError`` there.

    Args:
        graph (CrossModalGraph): the graph.
    """
    from wsfusion.graphs.pyg import CrossModalData

    return CrossModalData(
        edge_index=graph.edge_index,
        edge_type=graph.edge_type,
        node_modality=graph.node_modality,
        num_nodes=graph.num_nodes,
        modalities=list(graph.modalities),
        vocabulary=graph.vocabulary,
    )


def to_hetero(graph: GraphLike) -> HeteroData:
    """``torch_geometric.data.HeteroData`` with one node type per **vocabulary** entry.

    Node types are the vocabulary in order, with ``num_nodes = 0`` for a
    modality the graph has no node of (a 0-node modality, or a vocabulary
    entry not among its modalities), so every graph of one vocabulary has the
    same ``metadata()``.  Edge types ``(src, "ws", dst)`` follow the relation
    ids: all ``V ** 2`` are present (some empty), in relation-id order.
    Indices are local to each node type.  The graph-level attributes
    ``modalities`` (list) and ``vocabulary`` (tuple) let :func:`from_hetero`
    restore the graph exactly.

    Args:
        graph (CrossModalGraph): the graph.
    """
    from torch_geometric.data import HeteroData

    data = HeteroData()
    counts = dict(graph.node_counts)
    for name in graph.vocabulary:
        data[name].num_nodes = counts.get(name, 0)
    starts = {name: s.start for name, s in graph.node_slices.items()}
    ei, et = graph.edge_tensors()
    for r, (src, dst) in enumerate(graph.relation_names):
        sel = ei[:, et == r]
        data[src, HETERO_RELATION, dst].edge_index = torch.stack(
            [sel[0] - starts.get(src, 0), sel[1] - starts.get(dst, 0)]
        )
    data.modalities = list(graph.modalities)
    data.vocabulary = graph.vocabulary
    return data


# --------------------------------------------------------------------------- #
# imports: ``cls`` is bound by ``CrossModalGraph.from_*`` (and so by
# ``wsfusion.graphs.convert.from_*``); callers pass the other arguments only
# --------------------------------------------------------------------------- #
def from_dense_mask(cls: type[GraphT], mask: Tensor | np.ndarray, nodes: Mapping[str, int], **meta: Any) -> GraphT:
    """Inverse of :func:`to_dense_mask`: any nonzero ``mask[t, s]`` is an edge ``s -> t``.

    Args:
        mask (Tensor or ndarray): ``[N, N]``, symmetric.
        nodes (Mapping[str, int]): modality -> node count.
        **meta: ``vocabulary``, ``k``, ``beta``, ``seed``, ``order``, ``ring_order``.
    """
    mask = torch.as_tensor(mask)
    if mask.dim() != 2 or mask.size(0) != mask.size(1):
        raise ValueError(f"mask must be a square [N, N] matrix, got shape {tuple(mask.shape)}")
    target, source = mask.nonzero(as_tuple=True)
    return cls(torch.stack([source, target]), nodes, **meta)


def from_scipy(
    cls: type[GraphT], adj: scipy.sparse.sparray | scipy.sparse.spmatrix, nodes: Mapping[str, int], **meta: Any
) -> GraphT:
    """Inverse of :func:`to_scipy` (``adj[t, s] != 0`` is an edge ``s -> t``; explicit zeros are not edges)."""
    coo = adj.tocoo()
    keep = coo.data != 0
    ei = torch.from_numpy(np.stack([coo.col[keep], coo.row[keep]]).astype(np.int64))
    return cls(ei, nodes, **meta)


def from_networkx(
    cls: type[GraphT],
    graph: nx.Graph,
    nodes: Mapping[str, int] | None = None,
    *,
    return_mapping: bool = False,
    **meta: Any,
) -> GraphT | tuple[GraphT, dict[Hashable, int]]:
    r"""Inverse of :func:`to_networkx`, and the import of any networkx graph.

    **Modalities.**  ``nodes`` (modality -> count, in block order) defaults
    to ``graph.graph["node_counts"]`` (written by :func:`to_networkx`), else
    to the counts of the nodes' ``"modality"`` attributes, the modalities
    taken in vocabulary order (``vocabulary=`` or
    ``graph.graph["vocabulary"]``), else in the order they first appear in
    ``graph.nodes``.  Either every node has a ``"modality"`` attribute or
    none has; with attributes, each node's modality is its attribute (and the
    counts must agree with ``nodes``); without, the first ``nodes[m_0]``
    nodes (in the order below) are ``m_0``, the next ``nodes[m_1]`` are
    ``m_1``, and so on.

    **Node ids.**  Any hashable labels (ints, strings, tuples) are mapped to
    ``0 .. N-1``: grouped by modality in the order of ``nodes``, and within
    a modality in the order of ``graph.nodes``, except that labels that are
    exactly the integers ``0 .. N-1`` are taken in increasing order (so the
    output of :func:`to_networkx`, and any graph already labelled by node
    id, keeps its ids).  ``return_mapping=True`` also returns that mapping.

    **Edges.**  A directed graph is symmetrised: an edge :math:`u \to v`
    without its reverse becomes the undirected edge :math:`\{u, v\}`, with a
    ``UserWarning`` saying how many were.  Parallel edges of a multigraph
    collapse to one.

    Args:
        graph (networkx.Graph): any networkx graph (``DiGraph``,
            ``MultiGraph`` too).
        nodes (Mapping[str, int], optional): modality -> node count.
        return_mapping (bool): also return ``{label: node id}``.
            (default: :obj:`False`)
        **meta: ``vocabulary``, ``k``, ``beta``, ``seed``, ``order``,
            ``ring_order``; default to ``graph.graph``'s (a stored
            ``ring_order`` is in labels and is mapped to node ids).

    Returns:
        CrossModalGraph, or ``(CrossModalGraph, dict)`` with
        ``return_mapping=True``.

    Raises:
        ValueError: the counts do not sum to the number of nodes ("counts sum
            to 11, the graph has 12 nodes"), a node lacks the ``"modality"``
            attribute others have, a node's modality is not in ``nodes`` or
            the vocabulary, the per-modality counts disagree with the
            attributes, or no modality information is available at all.
    """
    info = graph.graph
    labels = list(graph.nodes)
    num_nodes = len(labels)
    if meta.get("vocabulary") is None and info.get("vocabulary") is not None:
        meta["vocabulary"] = tuple(info["vocabulary"])
    attrs = dict(graph.nodes(data="modality"))
    tagged = sum(1 for u in labels if attrs[u] is not None)
    if 0 < tagged < num_nodes:
        bare = next(u for u in labels if attrs[u] is None)
        raise ValueError(
            f"node {bare!r} has no 'modality' attribute but {tagged} of the {num_nodes} nodes have one; "
            "give every node a modality or none"
        )
    if nodes is None:
        if info.get("node_counts") is not None:
            nodes = dict(info["node_counts"])
        elif tagged:
            seen = list(dict.fromkeys(attrs[u] for u in labels))
            vocab = meta.get("vocabulary")
            if vocab is not None:
                vocab = check_vocabulary(vocab, ())
                for name in seen:
                    if name not in vocab:
                        raise ValueError(f"modality {name!r} of the networkx nodes is not in the vocabulary {vocab}")
                seen = [name for name in vocab if name in seen]
            nodes = {name: sum(1 for u in labels if attrs[u] == name) for name in seen}
        else:
            raise ValueError(
                "nodes is required: the networkx graph has neither 'modality' node attributes "
                "nor graph.graph['node_counts']"
            )
    names, counts = check_nodes(nodes)
    total = sum(counts)
    if total != num_nodes:
        raise ValueError(f"nodes {dict(zip(names, counts))}: counts sum to {total}, the graph has {num_nodes} nodes")

    if all(is_int(u) for u in labels) and set(labels) == set(range(num_nodes)):
        base = sorted(labels)
    else:
        base = labels
    if tagged:
        groups: dict[str, list[Hashable]] = {name: [] for name in names}
        for u in base:
            if attrs[u] not in groups:
                raise ValueError(f"node {u!r} has modality {attrs[u]!r}, which is not in nodes {list(names)}")
            groups[attrs[u]].append(u)
        for name, count in zip(names, counts):
            if len(groups[name]) != count:
                raise ValueError(
                    f"nodes gives modality {name!r} {count} nodes, the graph has {len(groups[name])} "
                    f"nodes with modality {name!r}"
                )
        ordered = [u for name in names for u in groups[name]]
    else:
        ordered = base
    mapping = {u: i for i, u in enumerate(ordered)}

    for key in ("k", "beta", "seed", "order", "ring_order"):
        if key not in meta and info.get(key) is not None:
            value = info[key]
            if key == "ring_order":
                try:
                    value = [mapping[u] for u in value]
                except (KeyError, TypeError) as err:
                    raise ValueError(f"graph.graph['ring_order'] names {err} which is not a node of the graph") from None
            meta[key] = value

    edges = list(graph.edges())
    if graph.is_directed():
        one_way = sum(1 for u, v in edges if not graph.has_edge(v, u))
        if one_way:
            warnings.warn(
                f"from_networkx: the graph is directed and {one_way} of its {len(edges)} edges have no reverse "
                "edge; symmetrising (each becomes an undirected edge). Pass graph.to_undirected() to silence this.",
                UserWarning,
                stacklevel=2,
            )
    pairs = np.array([(mapping[u], mapping[v]) for u, v in edges], dtype=np.int64).reshape(-1, 2).T
    both = np.unique(np.concatenate([pairs, pairs[::-1]], axis=1), axis=1)  # self loops and reverses appear twice
    out = cls(torch.from_numpy(both), dict(zip(names, counts)), **meta)
    return (out, mapping) if return_mapping else out


def from_pyg(cls: type[GraphT], data: Data, nodes: Mapping[str, int] | None = None, **meta: Any) -> GraphT:
    """Inverse of :func:`to_pyg`.

    ``nodes`` defaults to ``data.modalities`` with counts taken from
    ``data.node_modality`` (blocked in that order, as :func:`to_pyg` writes
    it), and the vocabulary to ``data.vocabulary`` (if absent, the
    modalities: data written before vocabularies existed reads as before).

    Args:
        data (torch_geometric.data.Data): one graph (not a ``Batch``).
        nodes (Mapping[str, int], optional): modality -> node count.
        **meta: ``vocabulary``, ``k``, ``beta``, ``seed``, ``order``, ``ring_order``.

    Raises:
        ValueError: ``data`` is a ``Batch`` (convert its graphs one by one),
            ``node_modality`` is not blocked, or the counts do not sum to
            ``data.num_nodes``.
    """
    from torch_geometric.data import Batch

    if isinstance(data, Batch):
        try:
            what = f"a Batch of {data.num_graphs} graphs"
        except Exception:  # noqa: BLE001 - a Batch built by hand may not know its size
            what = "a Batch"
        raise ValueError(
            f"from_pyg takes one graph but was given {what}; convert each graph: "
            "[from_pyg(d) for d in batch.to_data_list()], or from_pyg(batch.get_example(i)) for graph i"
        )
    stored = getattr(data, "vocabulary", None)
    if meta.get("vocabulary") is None and stored is not None:
        meta["vocabulary"] = tuple(stored)
    if nodes is None:
        if getattr(data, "modalities", None) is None or getattr(data, "node_modality", None) is None:
            raise ValueError("nodes is required: data has no 'modalities' and 'node_modality' (to_pyg writes them)")
        names = tuple(data.modalities)
        vocab = check_vocabulary(meta.get("vocabulary"), names)
        nm = torch.as_tensor(data.node_modality).to("cpu", torch.long).flatten()
        ids = torch.tensor([vocab.index(name) for name in names], dtype=torch.long)
        counts = [int((nm == i).sum()) for i in ids.tolist()]
        if not torch.equal(nm, torch.repeat_interleave(ids, torch.tensor(counts, dtype=torch.long))):
            raise ValueError(
                f"data.node_modality must be blocked in the order of data.modalities {list(names)}, "
                f"holding indices into the vocabulary {vocab} (as to_pyg writes it)"
            )
        nodes = dict(zip(names, counts))
    names, counts = check_nodes(nodes)
    if data.num_nodes is not None and sum(counts) != data.num_nodes:
        raise ValueError(
            f"nodes {dict(zip(names, counts))}: counts sum to {sum(counts)}, data has {data.num_nodes} nodes"
        )
    return cls(data.edge_index, dict(zip(names, counts)), **meta)


def from_hetero(cls: type[GraphT], data: HeteroData, **meta: Any) -> GraphT:
    """Inverse of :func:`to_hetero` (``"ws"`` edge types only).

    The modalities are ``data.modalities`` and the vocabulary
    ``data.vocabulary`` when present (:func:`to_hetero` writes both);
    otherwise the node types in order are the modalities (and the
    vocabulary).  Node types outside the modalities must have no ``"ws"``
    edges.

    Args:
        data (torch_geometric.data.HeteroData): the graph.
        **meta: ``vocabulary``, ``k``, ``beta``, ``seed``, ``order``, ``ring_order``.
    """
    stored_names = getattr(data, "modalities", None)
    names = list(stored_names) if stored_names is not None else list(data.node_types)
    stored_vocab = getattr(data, "vocabulary", None)
    if meta.get("vocabulary") is None and stored_vocab is not None:
        meta["vocabulary"] = tuple(stored_vocab)
    counts = [int(data[name].num_nodes or 0) if name in data.node_types else 0 for name in names]
    offsets = dict(zip(names, np.cumsum([0] + counts[:-1]).tolist()))
    parts = []
    for src, rel, dst in data.edge_types:
        if rel != HETERO_RELATION:
            continue
        ei = data[src, rel, dst].edge_index
        if ei.numel() == 0:
            continue
        if src not in offsets or dst not in offsets:
            raise ValueError(f"edge type {(src, rel, dst)} has edges but its node types are not among the modalities {names}")
        parts.append(torch.stack([ei[0] + offsets[src], ei[1] + offsets[dst]]))
    ei = torch.cat(parts, dim=1) if parts else torch.empty(2, 0, dtype=torch.long)
    return cls(ei, dict(zip(names, counts)), **meta)
