r"""Structural metrics of a :class:`~wsfusion.graphs.CrossModalGraph` (scipy, checked against networkx).

:func:`stats` is also the method ``CrossModalGraph.stats``. The functions read
a graph's public attributes only (:class:`~wsfusion.graphs._protocol.GraphLike`),
so this module does not import :mod:`wsfusion.graphs.graph`, which imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - imports for annotations only
    import scipy.sparse

    from wsfusion.graphs._protocol import GraphLike

__all__ = ["hop_distances", "path_lengths", "stats"]


def stats(
    graph: GraphLike,
    small_world: bool = False,
    *,
    path_length: bool = True,
    niter: int = 1,
    nrand: int = 2,
) -> dict[str, Any]:
    r"""Structural statistics, JSON-serialisable.

    Computed on the undirected simple graph *without* self loops
    (``graph.to_scipy()`` minus the diagonal) with
    scipy; the test-suite checks every value against networkx.  With
    :math:`A` that adjacency, :math:`d_i` the degrees and :math:`T_i =
    (A^3)_{ii} / 2` the triangles through node :math:`i`:

    .. math::
        C = \frac{1}{N} \sum_i \frac{T_i}{d_i (d_i - 1) / 2}, \qquad
        \ell = \frac{1}{N (N - 1)} \sum_{i \ne j} \mathrm{dist}(i, j)

    (a node of degree below 2 counts 0 in :math:`C`).

    Args:
        graph (CrossModalGraph): the graph.
        small_world (bool): also compute ``sigma`` and ``omega`` (slow).
        path_length (bool): compute the average shortest path length.
        niter (int): rewiring iterations of the small-world references.
        nrand (int): number of small-world reference graphs.

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
        * ``pair_edges``: undirected edge counts per unordered pair of the
          graph's modalities (0-node ones included, with 0), keyed ``"a-b"``
          in modality order (``"visual-visual"``, ``"visual-text"``, ...);
        * with ``small_world=True`` also ``sigma`` and ``omega``
          (``networkx.sigma`` / ``networkx.omega`` with ``niter``,
          ``nrand`` and ``seed=0``; ``None`` when disconnected).  **Slow**:
          both build ``nrand`` rewired reference graphs in pure Python
          (about 40 s at N=192 with the defaults ``niter=1, nrand=2``;
          networkx's own defaults ``niter=100, nrand=10`` take more than
          15 minutes there).  sigma > 1 and omega near 0 mean small-world.
    """
    from scipy.sparse import csgraph

    n = graph.num_nodes
    s, d = _edges_without_loops(graph)
    adj = _simple_adjacency(graph)
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
        apl = 0.0 if n == 1 else _bfs_summary(adj, np.arange(n), 256)[0] / (n * (n - 1))

    nm = graph.node_modality.numpy()  # vocabulary indices
    ms, md = nm[s], nm[d]
    upper = s < d
    names = graph.modalities
    ids = [graph.vocabulary.index(name) for name in names]
    pair_edges = {}
    for a in range(len(names)):
        for b in range(a, len(names)):
            i, j = ids[a], ids[b]
            cnt = int(np.sum(upper & (((ms == i) & (md == j)) | ((ms == j) & (md == i)))))
            pair_edges[f"{names[a]}-{names[b]}"] = cnt
    cross = int(np.sum(upper & (ms != md)))

    out: dict[str, Any] = {
        "num_nodes": n,
        "num_edges": num_edges,
        "num_self_loops": graph.num_self_loops,
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

            g = graph.to_networkx()
            g.remove_edges_from(nx.selfloop_edges(g))
            out["sigma"] = float(nx.sigma(g, niter=niter, nrand=nrand, seed=0))
            out["omega"] = float(nx.omega(g, niter=niter, nrand=nrand, seed=0))
    return out


def path_lengths(graph: GraphLike, sources: Sequence[int] | np.ndarray | None = None,
                 *, chunk: int = 256) -> dict[str, Any]:
    r"""Average shortest path length and the longest shortest path from ``sources``, by BFS.

    With every node as a source (the default) these are the exact average
    shortest path length :math:`\ell` of :func:`stats` and the diameter; with
    a sample of sources, estimates of both (the diameter from below). Self
    loops are ignored.

    Args:
        graph (CrossModalGraph): the graph.
        sources (Sequence[int], optional): BFS sources (default: all nodes).
        chunk (int): sources per BFS batch (memory ``O(chunk N)``).

    Returns:
        dict with ``avg_path_length`` (float) and ``diameter`` (int), both
        ``None`` when a source does not reach every node.
    """
    adj = _simple_adjacency(graph)
    n = graph.num_nodes
    sources = np.arange(n) if sources is None else np.asarray(sources)
    if n < 2:
        return {"avg_path_length": 0.0, "diameter": 0}
    total, diameter = _bfs_summary(adj, sources, chunk)
    if total is None:
        return {"avg_path_length": None, "diameter": None}
    return {"avg_path_length": total / (len(sources) * (n - 1)), "diameter": diameter}


def hop_distances(graph: GraphLike, source: int) -> np.ndarray:
    r"""Hops from ``source`` to every node (``inf`` where unreachable), by BFS on the undirected graph.

    A message-passing model with :math:`L` layers reads, at ``source``, exactly
    the nodes with ``hop_distances(graph, source) <= L``.

    Args:
        graph (CrossModalGraph): the graph.
        source (int): the node to measure from.

    Returns:
        ``[N]`` float array of hop counts (0 at ``source``).
    """
    from scipy.sparse import csgraph

    if not 0 <= source < graph.num_nodes:
        raise ValueError(f"source must be a node id in [0, {graph.num_nodes}), got {source!r}")
    return csgraph.shortest_path(_simple_adjacency(graph), directed=False, unweighted=True, indices=[source])[0]


def _edges_without_loops(graph: GraphLike) -> tuple[np.ndarray, np.ndarray]:
    """Sources and targets of the directed edges ``s -> t``, ``s != t`` (numpy, canonical order)."""
    src, dst = graph.edge_tensors()[0]
    keep = src != dst
    return src[keep].numpy(), dst[keep].numpy()


def _simple_adjacency(graph: GraphLike) -> scipy.sparse.csr_array:
    """The undirected adjacency without self loops (rows = targets)."""
    import scipy.sparse

    n = graph.num_nodes
    s, d = _edges_without_loops(graph)
    return scipy.sparse.csr_array((np.ones(s.shape[0], dtype=np.float64), (d, s)), shape=(n, n))


def _bfs_summary(adj: scipy.sparse.csr_array, sources: np.ndarray, chunk: int) -> tuple[int | None, int | None]:
    """Sum of the BFS distances from ``sources`` and their maximum (``None`` when a node is unreachable)."""
    # BFS from every source in C (scipy), a chunk of sources at a time so memory
    # stays O(chunk * N) instead of O(N^2); exact integer sum, like networkx.
    from scipy.sparse import csgraph

    total, diameter = 0, 0
    for start in range(0, len(sources), chunk):
        dist = csgraph.shortest_path(adj, directed=False, unweighted=True, indices=sources[start:start + chunk])
        if np.isinf(dist).any():
            return None, None
        total += int(dist.sum())
        diameter = max(diameter, int(dist.max()))
    return total, diameter
