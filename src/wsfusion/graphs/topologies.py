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

from wsfusion.graphs._checks import check_seed
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


def bigbird_graph(nodes: Mapping[str, int], k: int = 8, *, seed: int | None = 0,
                  vocabulary: Sequence[str] | None = None) -> CrossModalGraph:
    """BigBird-style: a global token, a ring window of ``k / 2`` and random pairs, :math:`N k / 2` edges.

    The global token is the middle node of the middle modality (of ``nodes``' order); the window
    is the interleaved ring lattice of even degree :math:`\\max(2, k/2)`; the remaining budget is
    filled with uniformly random non-edges under ``seed`` (``None``: a fresh seed, recorded as
    ``graph.seed``, as for the other builders).

    Raises:
        ValueError: if the hub and the window alone exceed the :math:`N k / 2` budget (``k`` too small).
    """
    seed = check_seed(seed)
    counts = dict(nodes)
    names = list(counts)
    n = sum(counts.values())
    budget = n * k // 2
    middle = names[len(names) // 2]
    hub = sum(counts[m] for m in names[: len(names) // 2]) + counts[middle] // 2  # node ids are blocked
    window = max(2, (k // 2) // 2 * 2)
    lattice = ring_lattice(n, window, ring_order=interleaved_ring_order(list(counts.values())))
    keys = torch.unique(torch.cat([undirected_keys(lattice, n),
                                   undirected_keys(torch.stack([torch.full((n,), hub), torch.arange(n)]), n)]))
    keys = keys[keys // n != keys % n]  # no self loop at the hub
    if keys.numel() > budget:
        raise ValueError(f"bigbird needs k large enough for its hub and window to fit the N k / 2 = {budget} edge "
                         f"budget (they take {keys.numel()} edges at N = {n}); got k = {k}")
    generator = torch.Generator().manual_seed(seed)
    extra = sample_non_edges(n, keys, max(0, budget - keys.numel()), generator, undirected=True)
    pairs = decode_undirected(torch.cat([keys, extra]), n)
    return CrossModalGraph.from_edge_index(torch.cat([pairs, pairs.flip(0)], dim=1), counts, k=k, seed=seed,
                                           order="interleaved", vocabulary=vocabulary)


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
