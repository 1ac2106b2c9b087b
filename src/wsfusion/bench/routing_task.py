r"""The routing task's wiring: topology names, graph statistics, what can reach the query token, the model.

See :mod:`wsfusion.bench.routing` for the protocol and the runs.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from wsfusion import graphs
from wsfusion.data import CrossModalRelay
from wsfusion.data.relay import RELAY_LABELS
from wsfusion.graphs import CrossModalGraph
from wsfusion.graphs.metrics import hop_distances, path_lengths
from wsfusion.nn import CrossModalAttentionConv
from wsfusion.topology import LearnableWSGraph

#: Sparse topologies (same edge budget) and the dense reference.
TOPOLOGIES = ("lattice", "ws-0.05", "ws-0.1", "ws-0.3", "ws-0.3-blocked", "random", "bigbird", "dense")
#: Learned beta (``learned-<beta_init>``): a :class:`~wsfusion.topology.LearnableWSGraph` on the interleaved
#: ring whose gates scale the attention (``edge_weight``); not run by default.
LEARNED = ("learned-0.01", "learned-0.5")
#: Dynamic sparse wiring from the lattice, at the same edge budget (``Rewirer(edges="attention")``); not run by default.
REWIRED = ("set", "rigl")
#: ``(tokens, epochs)`` stages trained before the target length (those shorter than it).
DEFAULT_CURRICULUM = ((8, 20), (16, 4), (32, 4))
#: The curriculum for T >= 256 (issue 20): also a T = 64 and a T = 256 stage before the target length.
LONG_CURRICULUM = DEFAULT_CURRICULUM + ((64, 4), (256, 4))
#: Path statistics are exact up to this many nodes, estimated from this many BFS sources beyond.
EXACT_PATHS_MAX_NODES, PATH_SOURCES = 4096, 512


@dataclass(frozen=True)
class RoutingTopology:
    r"""A routing topology label, parsed once: which graph to build, how it changes, how deep the model runs.

    Labels (:func:`parse_topology`) are ``[set-|rigl-]<base>[-blocked][-hub<h>[pm]][-deep]``, ``dense``
    or ``learned-<beta>[-deep]``. ``<base>`` is ``lattice`` (the interleaved ring lattice),
    ``ws-<beta>`` (Watts-Strogatz on the interleaved ring, ``beta`` in :math:`[0, 1)`; ``-blocked``:
    modality blocks on the ring), ``random`` (beta = 1) or ``bigbird`` (one global token, the middle
    ``text`` token, a ``k/2`` window, random pairs for the rest); each is the
    :func:`wsfusion.graphs.build` topology of that name. ``-hub<h>`` adds ``h`` hub nodes to the base
    within the same budget (:func:`wsfusion.graphs.hub_graph`; shared, or ``pm`` per modality).
    ``set-`` / ``rigl-`` rewire the base during training
    (:class:`~wsfusion.train.Rewirer` with ``edges="attention"``; ``set`` / ``rigl`` alone start from
    the lattice). ``learned-<beta>`` is a :class:`~wsfusion.topology.LearnableWSGraph` on the
    interleaved ring starting at that beta (in :math:`(0, 1)`). ``-deep`` runs the model's blocks
    cyclically (weights shared) to depth :math:`\max(L, \lceil \log N / \log(k - 1) \rceil + 1)`
    (:meth:`depth`): the height of a tree of branching ``k - 1`` over the ``N`` nodes, plus one.

    Every sparse graph has ``N k / 2`` undirected edges (in expectation for ``learned``).
    """

    label: str
    graph: str | None  #: the :func:`wsfusion.graphs.build` name of the starting graph; ``None``: dense
    options: tuple[tuple[str, Any], ...] = ()  #: its options (besides ``seed``)
    learned_beta: float | None = None  #: the initial beta of a learned topology
    rewire: str | None = None  #: ``"set"`` / ``"rigl"``: rewired during training
    deep: bool = False  #: depth grows with the length (:meth:`depth`)

    def build(self, tokens: int, k: int, seed: int) -> CrossModalGraph | LearnableWSGraph | None:
        """The graph over ``3 * tokens`` relay tokens (``None`` for ``dense``)."""
        counts = {m: tokens for m in CrossModalRelay.modalities}
        if self.learned_beta is not None:
            return LearnableWSGraph(counts, k, self.learned_beta, seed=seed, order="interleaved")
        if self.graph is None:
            return None
        return graphs.build(self.graph, counts, k, seed=seed, **dict(self.options))

    def depth(self, tokens: int, k: int, layers: int) -> int:
        r"""Rounds of message passing at this length: ``layers``, or with ``-deep``
        :math:`\max(L, \lceil \log N / \log(k - 1) \rceil + 1)` for :math:`N = 3 T` nodes."""
        if not self.deep:
            return layers
        if k < 3:
            raise ValueError(f"topology {self.label!r}: -deep needs k >= 3 (log(k - 1) > 0), got k = {k}")
        return max(layers, math.ceil(math.log(3 * tokens) / math.log(k - 1)) + 1)


#: The label grammar, for errors.
_EXPECTED = (f"{list(TOPOLOGIES) + list(REWIRED)}, or [set-|rigl-]<lattice|ws-<beta in [0, 1)>|random|bigbird>"
             "[-blocked][-hub<h>[pm]][-deep], or learned-<beta in (0, 1)>[-deep]")


def parse_topology(label: str) -> RoutingTopology:
    """Parse a routing topology label (:class:`RoutingTopology` gives the grammar); a ``ValueError`` names it."""
    def refuse(why: str) -> ValueError:
        return ValueError(f"topology {label!r}: {why}; expected one of {_EXPECTED}")

    if not isinstance(label, str):
        raise TypeError(f"topology must be a string label, got {type(label).__name__}")
    parts = label.split("-")
    deep = parts[-1] == "deep" and len(parts) > 1
    if deep:
        parts.pop()
    if parts == ["dense"]:
        if deep:
            raise refuse("dense attention reaches every token in one layer; -deep is for sparse graphs")
        return RoutingTopology(label, None)
    rewire = parts.pop(0) if parts[0] in REWIRED else None
    if rewire is not None and not parts:
        parts = ["lattice"]
    base, *rest = parts or [""]

    def beta(text: str | None, low_open: bool) -> float:
        try:
            value = float(text) if text is not None else math.nan
        except ValueError:
            value = math.nan
        if not (0.0 < value < 1.0 if low_open else 0.0 <= value < 1.0):
            raise refuse(f"beta must be in {'(0, 1)' if low_open else '[0, 1)'}, got {text!r}")
        return value

    if base == "learned":
        value = beta(rest.pop(0) if rest else None, low_open=True)
        if rest or rewire:
            raise refuse("a learned topology takes no other modifier than -deep")
        return RoutingTopology(label, None, learned_beta=value, deep=deep)
    if base == "ws":
        options: dict[str, Any] = {"beta": beta(rest.pop(0) if rest else None, low_open=False), "order": "interleaved"}
        if rest and rest[0] == "blocked":
            options["order"] = rest.pop(0)
    elif base in ("lattice", "random", "bigbird"):
        options = {}
    else:
        raise refuse(f"unknown base graph {base!r}")
    name = base
    if rest and (hub := re.fullmatch(r"hub([1-9][0-9]*)(pm)?", rest[0])):
        rest.pop(0)
        options = {"hubs": int(hub[1]), "per_modality": hub[2] is not None, "base": base, **options}
        name = "hub"
    if rest:
        raise refuse(f"unexpected {'-'.join(rest)!r}")
    return RoutingTopology(label, name, tuple(options.items()), rewire=rewire, deep=deep)


def build_topology(name: str, tokens: int, k: int, seed: int) -> CrossModalGraph | LearnableWSGraph | None:
    """The graph of topology label ``name`` over ``3 * tokens`` tokens (``None`` for ``dense``), ``N k / 2``
    edges each: :meth:`parse_topology(name).build <RoutingTopology.build>`."""
    return parse_topology(name).build(tokens, k, seed)


def path_statistics(graph: CrossModalGraph | None, seed: int = 0) -> dict[str, Any]:
    """Average shortest path length and diameter (exact up to 4,096 nodes, else from 512 BFS sources)."""
    if graph is None:
        return {"avg_path_length": 1.0, "diameter": 1, "paths_exact": True}
    n = graph.num_nodes
    exact = n <= EXACT_PATHS_MAX_NODES
    sources = None if exact else np.random.default_rng(seed).choice(n, PATH_SOURCES, replace=False)
    return {**path_lengths(graph, sources), "paths_exact": exact}


def query_reach(graph: CrossModalGraph | None, tokens: int, layers: int, num_classes: int,
                label: str = "sum") -> dict[str, float]:
    """What ``layers`` rounds of message passing on ``graph`` can deliver to the query token.

    ``key_reach`` / ``value_reach``: the fraction :math:`r_k` / :math:`r_v` of key (``visual``) /
    value (``text``) positions within ``layers`` hops of the query token; ``reach_bound``: the
    accuracy on ``label`` of a perfect relay on this graph under uniform random placement, which
    knows the codes that arrive and guesses the rest: ``"sum"`` :math:`r_k r_v + (1 - r_k r_v)/C`
    (one code alone leaves the sum at chance), ``"key"`` :math:`r_k + (1 - r_k)/C`, ``"pair"``
    :math:`(r_k + (1 - r_k)/C)(r_v + (1 - r_v)/C)`.
    """
    if label not in RELAY_LABELS:
        raise ValueError(f"label must be one of {list(RELAY_LABELS)}, got {label!r}")
    if graph is None:
        key = value = 1.0
    else:
        modalities = CrossModalRelay.modalities
        query_modality, position = CrossModalRelay.query
        hops = hop_distances(graph, modalities.index(query_modality) * tokens + position)
        key, value = ((hops[i * tokens:(i + 1) * tokens] <= layers).mean().item() for i in (0, 1))
    c = num_classes
    bound = {"sum": key * value + (1 - key * value) / c, "key": key + (1 - key) / c,
             "pair": (key + (1 - key) / c) * (value + (1 - value) / c)}[label]
    return {"key_reach": key, "value_reach": value, "reach_bound": bound}


def evaluation_sample(graph: LearnableWSGraph) -> CrossModalGraph:
    """The graph a learned topology is scored on: one hard sample at its current beta, drawn on the CPU from
    ``graph.seed`` (the same graph on every device), not the mode (which is the lattice for beta < 1/2)."""
    cpu = copy.deepcopy(graph).cpu()
    return cpu.to_graph("sample", torch.Generator().manual_seed(graph.seed))


class RoutingModel(nn.Module):
    """Token projection, ``layers`` pre-norm attention + feed-forward blocks, a classifier at the query token.

    ``graph`` is ``None`` (dense attention), a :class:`~wsfusion.graphs.CrossModalGraph`, or a
    :class:`~wsfusion.topology.LearnableWSGraph` whose gates (a sample in training, the fixed
    :attr:`eval_graph` sample in evaluation) weight the attention over its candidate edges.
    :meth:`set_graph` swaps the graph (a curriculum over lengths): no weight depends on it.
    ``depth`` (default ``layers``) rounds of message passing run the ``layers`` blocks cyclically
    (weights shared across rounds, so the parameter count does not change with it). The
    forward pass takes the trainer's ``(inputs, mask, input_mask)`` (the relay has neither mask)
    and ``edges=`` (an :class:`~wsfusion.train.attention_rewiring.EdgeGatedModel`).
    """

    def __init__(self, in_dim: int, width: int, heads: int, layers: int, num_classes: int,
                 graph: CrossModalGraph | LearnableWSGraph | None, depth: int | None = None) -> None:
        super().__init__()
        self.project = nn.Linear(in_dim, width)
        self.modality = nn.Embedding(len(CrossModalRelay.modalities), width)
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(2 * layers))
        if graph is None:
            self.attention = nn.ModuleList(nn.MultiheadAttention(width, heads, batch_first=True) for _ in range(layers))
        else:
            self.attention = nn.ModuleList(CrossModalAttentionConv(width, width, heads=heads) for _ in range(layers))
        self.ffn = nn.ModuleList(nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))
                                 for _ in range(layers))
        self.classify = nn.Linear(width, num_classes)
        self.graph: CrossModalGraph | LearnableWSGraph | None = None
        self.eval_graph: CrossModalGraph | None = None
        self.depth = layers
        self.set_graph(graph, depth)

    def set_graph(self, graph: CrossModalGraph | LearnableWSGraph | None, depth: int | None = None) -> None:
        """Use ``graph`` (and ``depth`` rounds; ``None`` keeps the current depth, as a rewiring step that
        swaps only the edges must) from now on (for a learned beta over another length, pass
        :meth:`LearnableWSGraph.with_nodes <wsfusion.topology.LearnableWSGraph.with_nodes>`: one beta)."""
        if (graph is None) != isinstance(self.attention[0], nn.MultiheadAttention):
            raise ValueError("a dense model takes no graph, and a sparse one needs one")
        layers = len(self.attention)
        if depth is not None and not (isinstance(depth, int) and depth >= layers):
            raise ValueError(f"depth must be an int >= the {layers} blocks (each block runs at least once), "
                             f"got {depth!r}")
        self.graph, self.eval_graph = graph, None
        self.depth = self.depth if depth is None else depth

    def _edges(self, device: torch.device) -> tuple[Tensor, Tensor | None]:
        graph = self.graph
        if isinstance(graph, LearnableWSGraph):
            if self.training:
                return graph.edge_index, graph()
            if self.eval_graph is None:
                self.eval_graph = evaluation_sample(graph)
            graph = self.eval_graph
        return graph.edge_tensors(device)[0], None

    def train(self, mode: bool = True) -> "RoutingModel":
        self.eval_graph = None  # the learned beta moves in training: draw the evaluation graph again
        return super().train(mode)

    def forward(self, inputs: dict[str, Tensor], mask: dict[str, Tensor] | None = None,
                input_mask: dict[str, Tensor] | None = None, *,
                edges: tuple[Tensor, Tensor | None] | None = None) -> Tensor:
        """Logits at the query token; ``edges`` (``edge_index``, ``edge_weight``) overrides the graph's."""
        if mask or input_mask:
            raise ValueError("RoutingModel takes no modality mask or input_mask: every relay token is real")
        x = torch.cat([inputs[m] for m in CrossModalRelay.modalities], dim=1)  # blocked node ids
        tokens = inputs[CrossModalRelay.modalities[0]].shape[1]
        modality = torch.arange(len(CrossModalRelay.modalities), device=x.device).repeat_interleave(tokens)
        h = self.project(x) + self.modality(modality)
        if edges is not None:
            if self.graph is None:
                raise ValueError("edges= needs a sparse model; a dense one (graph=None) attends over all tokens")
            edge_index, edge_weight = edges
        else:
            edge_index, edge_weight = (None, None) if self.graph is None else self._edges(x.device)
        for depth in range(self.depth):
            i = depth % len(self.attention)
            attention, ffn = self.attention[i], self.ffn[i]
            z = self.norms[2 * i](h)
            if edge_index is None:
                h = h + attention(z, z, z, need_weights=False)[0]
            else:
                h = h + attention(z, edge_index, edge_weight=edge_weight)
            h = h + ffn(self.norms[2 * i + 1](h))
        query_modality, position = CrossModalRelay.query
        return self.classify(h[:, CrossModalRelay.modalities.index(query_modality) * tokens + position])
