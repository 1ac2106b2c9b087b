"""Topologies at one edge budget: the graphs the routing benchmark compares, as public builders and a registry.

Every builder takes ``nodes`` (modality -> node count, as :func:`token_graph`) and an even
degree ``k`` and returns a :class:`CrossModalGraph` with exactly :math:`N k / 2` undirected
edges (:math:`N k` directed ones), symmetric, without self-loops, deterministic under ``seed``:

* ``lattice``: the interleaved ring lattice (Watts-Strogatz at ``beta = 0``);
* ``ws``: Watts-Strogatz on the interleaved ring (``beta``, ``order`` options);
* ``random``: Watts-Strogatz at ``beta = 1`` (every edge rewired, degrees stay near ``k``);
* ``bigbird``: BigBird-style (`Zaheer et al., 2020 <https://arxiv.org/abs/2007.14062>`_): one
  global token joined to every node, a ring window of :math:`k/2` on the interleaved ring, and
  random pairs for the rest of the budget.

>>> from wsfusion import graphs
>>> g = graphs.build("bigbird", {"visual": 32, "text": 32, "audio": 32}, k=8, seed=0)
>>> g.edge_index.shape[1] == 96 * 8
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

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


def _ws(nodes: Mapping[str, int], k: int = 4, *, beta: float = 0.3, seed: int | None = 0, order: str = "interleaved",
        vocabulary: Sequence[str] | None = None) -> CrossModalGraph:
    return token_graph(nodes, k=k, beta=beta, seed=seed, order=order, vocabulary=vocabulary)


#: name -> builder(nodes, k, **options)
TOPOLOGIES: dict[str, Callable[..., CrossModalGraph]] = {
    "lattice": lattice_graph, "ws": _ws, "random": random_graph, "bigbird": bigbird_graph,
}


def available() -> tuple[str, ...]:
    """The registered topology names (:func:`build`)."""
    return tuple(TOPOLOGIES)


def build(name: str, nodes: Mapping[str, int], k: int = 4, **options: Any) -> CrossModalGraph:
    """The ``name`` topology over ``nodes`` at degree ``k`` (:math:`N k / 2` edges).

    Args:
        name (str): one of :func:`available` (``lattice``, ``ws``, ``random``, ``bigbird``).
        nodes (Mapping[str, int]): modality -> node count.
        k (int): even degree; the edge budget is :math:`N k / 2`.
        **options: the builder's keywords (``seed``, ``vocabulary``; ``beta`` and ``order``
            for ``ws``).
    """
    if name not in TOPOLOGIES:
        raise ValueError(f"topology must be one of {available()}, got {name!r}")
    return TOPOLOGIES[name](nodes, k, **options)
