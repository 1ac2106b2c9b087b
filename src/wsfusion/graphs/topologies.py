"""Topologies at one edge budget: the graphs the routing benchmark compares, as public builders and a registry.

Every builder takes ``nodes`` (modality -> node count, as :func:`token_graph`) and an even
degree ``k`` and returns a :class:`CrossModalGraph` with exactly :math:`N k / 2` undirected
edges (:math:`N k` directed ones), symmetric, without self-loops, deterministic under ``seed``:

* ``lattice``: the interleaved ring lattice (Watts-Strogatz at ``beta = 0``);
* ``ws``: Watts-Strogatz on the interleaved ring (``beta``, ``order`` options);
* ``random``: Watts-Strogatz at ``beta = 1`` (every edge rewired, degrees stay near ``k``);
* ``bigbird``: BigBird-style (`Zaheer et al., 2020 <https://arxiv.org/abs/2007.14062>`_): one
  global token joined to every node, a ring window of :math:`k/2` on the interleaved ring, and
  random pairs for the rest of the budget;
* ``hub``: any of the others (``base``, ``ws`` by default) with ``hubs`` of its nodes promoted
  to hubs (global tokens, fusion bottlenecks), shared or per modality, thinned back to the budget.

:func:`reach` measures what a graph lets an ``L``-layer model read (the reach bound),
:func:`moore_bound` what a graph of bounded degree can at most.

>>> from wsfusion import graphs
>>> g = graphs.build("bigbird", {"visual": 32, "text": 32, "audio": 32}, k=8, seed=0)
>>> g.edge_index.shape[1] == 96 * 8
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from wsfusion._validation import check_int, check_positive_int
from wsfusion.graphs._checks import check_k, check_nodes, check_seed
from wsfusion.graphs.edges import decode_undirected, sample_non_edges, undirected_keys
from wsfusion.graphs.builders import interleaved_ring_order, ring_lattice, token_graph
from wsfusion.graphs.graph import CrossModalGraph


def lattice_graph(nodes: Mapping[str, int], k: int = 4, *, seed: int | None = 0,
                  vocabulary: Sequence[str] | None = None) -> CrossModalGraph:
    """The interleaved ring lattice: every node joined to its ``k / 2`` nearest ring neighbours each side."""
    return token_graph(nodes, k=k, beta=0.0, seed=seed, vocabulary=vocabulary)


def random_graph(nodes: Mapping[str, int], k: int = 4, *, seed: int | None = 0,
                 vocabulary: Sequence[str] | None = None) -> CrossModalGraph:
    """Watts-Strogatz at ``beta = 1``: every lattice edge rewired to a uniformly random target."""
    return token_graph(nodes, k=k, beta=1.0, seed=seed, vocabulary=vocabulary)


def _star_keys(centres: Tensor, members: Tensor, num_nodes: int) -> Tensor:
    """Sorted undirected keys of every pair ``{c, m}``, ``c`` in ``centres``, ``m`` in ``members``, ``c != m``."""
    c, m = torch.cartesian_prod(centres, members).T
    return torch.unique(undirected_keys(torch.stack([c[c != m], m[c != m]]), num_nodes))


def _from_keys(keys: Tensor, counts: Mapping[str, int], **meta: Any) -> CrossModalGraph:
    """The graph whose undirected edges are the (distinct) ``keys``, stored in both directions."""
    n = sum(counts.values())
    pairs = decode_undirected(keys, n)
    return CrossModalGraph.from_edge_index(torch.cat([pairs, pairs.flip(0)], dim=1), counts, **meta)


def bigbird_graph(nodes: Mapping[str, int], k: int = 8, *, seed: int | None = 0,
                  vocabulary: Sequence[str] | None = None) -> CrossModalGraph:
    """BigBird-style: a global token, a ring window of ``k / 2`` and random pairs, :math:`N k / 2` edges.

    The global token is the middle node of the middle modality (of ``nodes``' order, 0-node
    modalities left out); the window is the interleaved ring lattice of even degree
    :math:`\\max(2, k/2)`; the remaining budget is filled with uniformly random non-edges under
    ``seed`` (``None``: a fresh seed, recorded as ``graph.seed``, as for the other builders).

    Raises:
        ValueError: the checks of :func:`ws_cross_modal_graph` on ``nodes`` and ``k``, or the hub
            and the window alone over the :math:`N k / 2` budget (``k`` too small).
    """
    seed = check_seed(seed)
    names, sizes = check_nodes(nodes)
    counts = dict(zip(names, sizes))
    n = sum(sizes)
    k = check_k(k, n)
    budget = n * k // 2
    present = [m for m in names if counts[m]]  # a 0-node modality has no middle node
    middle = present[len(present) // 2]
    hub = sum(sizes[: names.index(middle)]) + counts[middle] // 2  # node ids are blocked
    window = max(2, (k // 2) // 2 * 2)
    lattice = ring_lattice(n, window, ring_order=interleaved_ring_order(sizes))
    keys = torch.unique(torch.cat([undirected_keys(lattice, n), _star_keys(torch.tensor([hub]), torch.arange(n), n)]))
    if keys.numel() > budget:
        raise ValueError(f"bigbird needs k large enough for its hub and window to fit the N k / 2 = {budget} edge "
                         f"budget (they take {keys.numel()} edges at N = {n}); got k = {k}")
    generator = torch.Generator().manual_seed(seed)
    extra = sample_non_edges(n, keys, max(0, budget - keys.numel()), generator, undirected=True)
    return _from_keys(torch.cat([keys, extra]), counts, k=k, seed=seed, order="interleaved", vocabulary=vocabulary)


def hub_nodes(nodes: Mapping[str, int], hubs: int = 1, *, per_modality: bool = False) -> Tensor:
    r"""The node ids :func:`hub_graph` promotes to hubs, spread evenly: the midpoints of equal segments.

    Shared hubs (``per_modality=False``) spread over all :math:`N` node ids, hub :math:`j` of
    :math:`h` being node :math:`\lfloor (2j + 1) N / (2h) \rfloor`; per-modality hubs spread in the
    same way over each modality's block of :math:`n_m` ids starting at :math:`s_m`:
    :math:`s_m + \lfloor (2j + 1) n_m / (2h) \rfloor` (a modality with 0 nodes has no hub). One hub
    is the middle node (of the graph, or of each modality).

    Args:
        nodes (Mapping[str, int]): modality -> node count; node ids are blocked in this order.
        hubs (int): hubs :math:`h \ge 1` in all, or in each non-empty modality.
        per_modality (bool): ``hubs`` in each modality instead of ``hubs`` shared ones.

    Returns:
        LongTensor ``[h]`` or ``[h M']`` (:math:`M'` non-empty modalities), sorted.

    Raises:
        ValueError: the checks of :func:`ws_cross_modal_graph` on ``nodes``, ``hubs`` not a
            positive integer, or more hubs than nodes (than a non-empty modality's nodes).

    Example:
        >>> hub_nodes({"visual": 8, "text": 8, "audio": 8}, 2).tolist()
        [6, 18]
        >>> hub_nodes({"visual": 8, "text": 8, "audio": 8}, 2, per_modality=True).tolist()
        [2, 6, 10, 14, 18, 22]
    """
    names, counts = check_nodes(nodes)
    h = check_positive_int(hubs, "hubs")
    if not isinstance(per_modality, bool):
        raise ValueError(f"per_modality must be a bool, got {per_modality!r}")
    if per_modality:
        blocks = [(f"modality {name!r}", size, sum(counts[:i])) for i, (name, size) in enumerate(zip(names, counts))]
    else:
        blocks = [("the graph", sum(counts), 0)]
    ids = []
    for where, size, start in blocks:
        if size and h > size:
            raise ValueError(f"hubs = {h} is more than the {size} nodes of {where}")
        if size:
            ids.append(start + (2 * torch.arange(h) + 1) * size // (2 * h))
    return torch.cat(ids)


def hub_graph(nodes: Mapping[str, int], k: int = 8, *, hubs: int = 1, per_modality: bool = False, base: str = "ws",
              seed: int | None = 0, vocabulary: Sequence[str] | None = None, **base_options: Any) -> CrossModalGraph:
    r"""A ``base`` topology with hub (global, bottleneck) nodes, at the same :math:`N k / 2` edges.

    The global tokens of BigBird (`Zaheer et al., 2020 <https://arxiv.org/abs/2007.14062>`_) and
    the bottleneck tokens of attention-bottleneck fusion (`Nagrani et al., 2021
    <https://arxiv.org/abs/2107.00135>`_). Hubs are existing nodes (:func:`hub_nodes`), so the
    node set and the modalities are those of ``nodes`` and any fusion that takes a graph takes
    this one. With :math:`H` the hubs:

    * shared (``per_modality=False``): every hub is joined to every other node,
      :math:`\mathcal{E}_H = \{\{u, v\} : u \in H, v \ne u\}`; every node is within 2 hops of
      every other (1 from a hub);
    * ``per_modality=True``: every hub is joined to every node of its own modality and to every
      other hub, :math:`\mathcal{E}_H = \{\{u, v\} : u \in H_m, v \in V_m \cup H, v \ne u\}`;
      cross-modal traffic can pass through the hubs, every node is within 3 hops of every other.

    The graph is :math:`\mathcal{E}_H \cup \mathcal{E}_B` with :math:`\mathcal{E}_B` the ``base``
    topology of :func:`build` at the same ``k`` and ``seed`` (:math:`N k / 2` edges), thinned
    back to the budget: :math:`|\mathcal{E}_H \setminus \mathcal{E}_B|` edges of
    :math:`\mathcal{E}_B \setminus \mathcal{E}_H` (base edges that are not hub edges, always
    enough) are dropped, drawn uniformly under ``seed``. So the graph has exactly
    :math:`N k / 2` undirected edges, every hub edge among them.

    Args:
        nodes (Mapping[str, int]): modality -> node count (0 allowed), node ids blocked in this order.
        k (int): even degree, :math:`2 \le k < N`; the budget is :math:`N k / 2` edges.
        hubs (int): hubs in all, or in each non-empty modality with ``per_modality``. (default: 1)
        per_modality (bool): per-modality hubs joined as a clique, instead of shared ones.
        base (str): the topology that fills the rest of the budget, a name of :func:`available`
            other than ``"hub"``. (default: ``"ws"``, Watts-Strogatz on the interleaved ring)
        seed (int, optional): seeds the base and the dropped edges (``None``: a fresh one,
            recorded as ``graph.seed``).
        vocabulary (Sequence[str], optional): the relation vocabulary (see
            :func:`ws_cross_modal_graph`).
        **base_options: the base builder's options (``beta``, ``order`` for ``"ws"``).

    Returns:
        CrossModalGraph: ``k``, ``seed``, ``order`` and ``ring_order`` set (``order`` and ring
        from the base); the hubs are :func:`hub_nodes` of ``nodes, hubs, per_modality``.

    Raises:
        ValueError: the checks of :func:`hub_nodes` and of ``k``, an unknown ``base``, the base
            builder's own errors, or hub edges alone over the :math:`N k / 2` budget (the
            message names the smallest ``k`` that fits).

    Example:
        >>> nodes = {"visual": 32, "text": 32, "audio": 32}
        >>> g = hub_graph(nodes, k=8, hubs=2, per_modality=True, seed=0)
        >>> g.num_edges == 96 * 8 // 2
        True
        >>> reach(g, 3) == 96  # every node within 3 hops of every other
        True
    """
    seed = check_seed(seed)
    names, sizes = check_nodes(nodes)
    counts = dict(zip(names, sizes))
    n = sum(sizes)
    k = check_k(k, n)
    if base == "hub" or base not in TOPOLOGIES:
        raise ValueError(f"hub: base must be one of {tuple(b for b in TOPOLOGIES if b != 'hub')}, got {base!r}")
    centres = hub_nodes(counts, hubs, per_modality=per_modality)
    if per_modality:
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        blocks = [torch.arange(start, start + size) for start, size in zip(starts, sizes)]
        modality = torch.bucketize(centres, torch.tensor(starts[1:]), right=True)
        parts = [_star_keys(centres[modality == m], block, n) for m, block in enumerate(blocks)]
        hub_keys = torch.unique(torch.cat([*parts, _star_keys(centres, centres, n)]))
    else:
        hub_keys = _star_keys(centres, torch.arange(n), n)
    budget = n * k // 2
    if hub_keys.numel() > budget:
        fits = 2 * -(-hub_keys.numel() // n)
        hint = f"the smallest k that fits is {fits}" if fits < n else f"no even k < N = {n} fits; use fewer hubs"
        raise ValueError(f"hub: the hub edges alone ({hub_keys.numel()} at hubs = {hubs}, per_modality = "
                         f"{per_modality}, N = {n}) exceed the N k / 2 = {budget} edge budget at k = {k}; {hint}")
    graph = build(base, counts, k, seed=seed, **base_options)
    src, dst = graph.edge_index
    base_keys = undirected_keys(torch.stack([src[src < dst], dst[src < dst]]), n)
    droppable = base_keys[~torch.isin(base_keys, hub_keys)]
    excess = hub_keys.numel() + droppable.numel() - budget
    kept = droppable[torch.randperm(droppable.numel(), generator=torch.Generator().manual_seed(seed))[excess:]]
    return _from_keys(torch.cat([hub_keys, kept]), counts, k=k, seed=seed, order=graph.order,
                      ring_order=graph.ring_order, vocabulary=vocabulary)


def reach(graph: CrossModalGraph, depth: int, *, sources: Sequence[int] | Tensor | None = None) -> int:
    r"""The reach bound at ``depth``: the fewest nodes any source has within ``depth`` hops, itself included.

    :math:`\min_{s} |\{v : d(s, v) \le L\}|` over ``sources`` (all nodes by default), :math:`d` the
    hop distance on the undirected graph (self-loops ignored). An :math:`L`-layer message-passing
    model reads at node :math:`s` exactly the nodes within :math:`L` hops, so ``reach(graph, L)
    == graph.num_nodes`` says every node can read every other. At fixed :math:`L`, a graph of
    maximum degree :math:`\Delta` reaches at most :func:`moore_bound` nodes; hubs lift that limit.

    Args:
        graph (CrossModalGraph): the graph.
        depth (int): hops :math:`L \ge 0`.
        sources (Sequence[int] or LongTensor, optional): the nodes that read (e.g. designated
            readout tokens); all nodes by default.

    Returns:
        int

    Example:
        >>> g = lattice_graph({"visual": 32, "text": 32}, k=4)
        >>> reach(g, 3)  # the ring lattice: 1 + k L
        13
    """
    from scipy.sparse import csgraph

    depth = check_int(depth, "depth", 0)
    n = graph.num_nodes
    ids = np.arange(n) if sources is None else torch.as_tensor(sources, dtype=torch.long).reshape(-1).numpy()
    if ids.size == 0 or ids.min() < 0 or ids.max() >= n:
        raise ValueError(f"sources must be node ids in [0, {n}), at least one, got {ids.tolist()}")
    adjacency = graph.to_scipy()
    fewest = n
    for start in range(0, ids.size, 256):  # O(256 N) memory
        hops = csgraph.shortest_path(adjacency, directed=False, unweighted=True, indices=ids[start:start + 256])
        fewest = min(fewest, int((hops <= depth).sum(axis=1).min()))
    return fewest


def moore_bound(degree: int, depth: int) -> int:
    r"""The Moore bound: the most nodes within ``depth`` hops of a node when no degree exceeds ``degree``.

    :math:`1 + \Delta \sum_{i=0}^{L-1} (\Delta - 1)^i` (:math:`\Delta` = ``degree``, :math:`L` =
    ``depth``). With :func:`reach`: a graph without hubs needs :math:`L` of order
    :math:`\log N / \log(\Delta - 1)` layers before :func:`reach` can be :math:`N`.

    Example:
        >>> moore_bound(4, 3)
        53
    """
    degree, depth = check_int(degree, "degree", 0), check_int(depth, "depth", 0)
    return 1 + degree * sum((degree - 1) ** i for i in range(depth))


def _ws(nodes: Mapping[str, int], k: int = 4, *, beta: float = 0.3, seed: int | None = 0, order: str = "interleaved",
        vocabulary: Sequence[str] | None = None) -> CrossModalGraph:
    return token_graph(nodes, k=k, beta=beta, seed=seed, order=order, vocabulary=vocabulary)


#: name -> builder(nodes, k, **options)
TOPOLOGIES: dict[str, Callable[..., CrossModalGraph]] = {
    "lattice": lattice_graph, "ws": _ws, "random": random_graph, "bigbird": bigbird_graph, "hub": hub_graph,
}


def available() -> tuple[str, ...]:
    """The registered topology names (:func:`build`)."""
    return tuple(TOPOLOGIES)


def build(name: str, nodes: Mapping[str, int], k: int = 4, **options: Any) -> CrossModalGraph:
    """The ``name`` topology over ``nodes`` at degree ``k`` (:math:`N k / 2` edges).

    Args:
        name (str): one of :func:`available` (``lattice``, ``ws``, ``random``, ``bigbird``, ``hub``).
        nodes (Mapping[str, int]): modality -> node count.
        k (int): even degree; the edge budget is :math:`N k / 2`.
        **options: the builder's keywords (``seed``, ``vocabulary``; ``beta`` and ``order``
            for ``ws``; ``hubs``, ``per_modality``, ``base`` and the base's options for ``hub``).

    Example:
        >>> g = build("hub", {"visual": 16, "text": 16}, k=6, hubs=2, per_modality=True, seed=0)
        >>> g.num_edges, hub_nodes({"visual": 16, "text": 16}, 2, per_modality=True).tolist()
        (96, [4, 12, 20, 28])
    """
    if name not in TOPOLOGIES:
        raise ValueError(f"topology must be one of {available()}, got {name!r}")
    return TOPOLOGIES[name](nodes, k, **options)
