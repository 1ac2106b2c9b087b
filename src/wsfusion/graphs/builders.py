r"""Watts-Strogatz cross-modal graphs: builders.

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

Relation ids (``edge_type``) come from the ``vocabulary``: pass the same
ordered tuple of modality names (e.g. ``("visual", "text", "audio")``) to
every graph of a dataset, and the pair (source modality, target modality)
gets the same id in all of them, ``voc(source) * V + voc(target)``, even
when a graph lacks some modalities or has 0 nodes in them.  Without it the
vocabulary is the graph's own modality list (see :class:`CrossModalGraph`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from wsfusion._validation import check_positive_int
from wsfusion.graphs._checks import (
    ORDERS,
    check_beta,
    check_k,
    check_nodes,
    check_order,
    check_ring_order,
    check_seed,
    check_vocabulary,
)
from wsfusion.graphs.edges import sort_edge_index
from wsfusion.graphs.graph import CrossModalGraph

__all__ = ["ORDERS", "interleaved_ring_order", "ring_lattice", "token_graph", "ws_cross_modal_graph"]


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
        counts (Sequence[int]): nodes per modality, in modality order (a
            modality with 0 nodes takes no ring position).

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


def ring_lattice(
    num_nodes: int,
    k: int,
    *,
    ring_order: Tensor | Sequence[int] | None = None,
) -> Tensor:
    r"""Ring lattice: the Watts-Strogatz graph before rewiring (:math:`\beta = 0`).

    The nodes sit on a ring, node :math:`\pi(p)` at position :math:`p`
    (``ring_order``, identity by default), and every node is joined to its
    :math:`k/2` nearest ring neighbours on each side:

    .. math::
        \mathcal{E} = \big\{ \{\pi(p), \pi((p + j) \bmod N)\} \;:\;
        0 \le p < N,\ 1 \le j \le k/2 \big\}.

    Since :math:`k < N` the :math:`N k / 2` pairs are distinct: every node
    has degree exactly :math:`k` and there are no self loops.  This is the
    edge set :func:`ws_cross_modal_graph` rewires (``order="blocked"``:
    identity ring; ``"interleaved"``: :func:`interleaved_ring_order`).

    Args:
        num_nodes (int): number of nodes :math:`N`.
        k (int): even ring degree, :math:`2 \le k < N`.
        ring_order (LongTensor or Sequence[int], optional): the node id at
            each ring position, a permutation of :math:`0, \dots, N - 1`.

    Returns:
        LongTensor ``[2, N k]``: both directions of every edge (row 0 source,
        row 1 target), sorted by target then source like
        :attr:`CrossModalGraph.edge_index`.
        It carries no modalities: wrap it with
        ``CrossModalGraph.from_edge_index(edges, nodes, vocabulary=...)``
        for a graph with relation ids.

    Shapes:
        - **output:** :math:`(2, N k)`

    Raises:
        ValueError: a non-integer or non-positive ``num_nodes``, an odd
            ``k``, ``k < 2``, ``k >= N``, or a ``ring_order`` that is not a
            permutation.

    Example:
        >>> ring_lattice(6, 2)[:, :4]
        tensor([[1, 5, 0, 2],
                [0, 0, 1, 1]])
    """
    n = check_positive_int(num_nodes, "num_nodes")
    k = check_k(k, n)
    ring = torch.arange(n) if ring_order is None else check_ring_order(ring_order, n)
    pos = torch.arange(n)
    pairs = torch.cat([torch.stack([ring[pos], ring[(pos + j) % n]]) for j in range(1, k // 2 + 1)], dim=1)
    return sort_edge_index(torch.cat([pairs, pairs.flip(0)], dim=1), n).contiguous()


def ws_cross_modal_graph(
    nodes: Mapping[str, int],
    k: int = 4,
    beta: float = 0.3,
    *,
    seed: int | None = 0,
    order: str = "blocked",
    self_loops: bool = False,
    vocabulary: Sequence[str] | None = None,
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
    edge fraction, 3 x 64 nodes, ``k=6`` (20 seeds; see docs/graphs.md):

    ============ ===== ===== ===== ===== =====
    beta          0     0.1   0.3   0.5   1
    ============ ===== ===== ===== ===== =====
    blocked       0.031 0.095 0.223 0.361 0.683
    interleaved   0.667 0.666 0.669 0.673 0.672
    ============ ===== ===== ===== ===== =====

    A modality with 0 nodes contributes no node and no edge (``k < N``
    and the rest apply to the total :math:`N`), but keeps its place in the
    vocabulary.

    Args:
        nodes (Mapping[str, int]): ordered mapping modality -> node count
            (counts may differ; 0 is allowed, :math:`N \ge 1`).
        k (int): even ring degree, :math:`2 \le k < N`.
        beta (float): rewiring probability in :math:`[0, 1]`.
        seed (int, optional): random seed; the same seed gives the same graph.
            ``None`` draws a fresh seed, recorded as ``graph.seed``.
        order (str): ``"blocked"`` or ``"interleaved"`` ring layout.
        self_loops (bool): add an edge :math:`i \to i` on every node.
        vocabulary (Sequence[str], optional): fixed, ordered relation
            vocabulary shared by the graphs of a dataset, containing every
            modality of ``nodes``; ``edge_type = voc(source) * V +
            voc(target)`` and ``num_relations = V ** 2``.  It does not change
            the edges or the node ids.  (default: :obj:`None`, the keys of
            ``nodes`` in order)

    Returns:
        CrossModalGraph

    Raises:
        ValueError: odd ``k`` (networkx would silently use ``k - 1``),
            ``k < 2``, ``k >= N``, ``beta`` not a finite number in [0, 1],
            an empty mapping, a negative count or no node at all, a
            non-string name, a non-integer count, an unknown ``order``, a
            bad ``seed``, or a modality missing from ``vocabulary``.

    Example:
        >>> g = ws_cross_modal_graph({"visual": 64, "text": 64, "audio": 64}, k=6, beta=0.3, seed=42)
        >>> import networkx as nx
        >>> ref = nx.watts_strogatz_graph(192, 6, 0.3, seed=42)
        >>> bool((g.to_dense_mask().numpy() == nx.to_numpy_array(ref)).all())
        True
    """
    import networkx as nx

    names, counts = check_nodes(nodes)
    vocab = check_vocabulary(vocabulary, names)
    num_nodes = sum(counts)
    k = check_k(k, num_nodes)
    beta = check_beta(beta)
    order = check_order(order)
    seed = check_seed(seed)
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
    ei = sort_edge_index(torch.cat(parts, dim=1), num_nodes)
    return CrossModalGraph(
        ei,
        dict(zip(names, counts)),
        vocabulary=vocab,
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
    vocabulary: Sequence[str] | None = None,
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

    Args:
        tokens (Mapping[str, int | Tensor]): modality -> token count, or
            token features ``[B, T, D]`` / ``[T, D]``.
        k (int): even ring degree, :math:`2 \le k < N`.
        beta (float): rewiring probability in :math:`[0, 1]`.
        seed (int, optional): random seed (``None``: fresh, recorded).
        order (str): ``"interleaved"`` (default) or ``"blocked"``.
        self_loops (bool): add an edge :math:`i \to i` on every node.
        vocabulary (Sequence[str], optional): fixed, ordered relation
            vocabulary (see :func:`ws_cross_modal_graph`); a modality with 0
            tokens keeps its relation ids.  (default: :obj:`None`, the keys of
            ``tokens`` in order)

    Returns:
        CrossModalGraph with :math:`N = \sum_m T_m` nodes.

    Raises:
        ValueError: as :func:`ws_cross_modal_graph`, or token features with
            fewer than 2 dimensions.

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
    return ws_cross_modal_graph(counts, k, beta, seed=seed, order=order, self_loops=self_loops, vocabulary=vocabulary)
