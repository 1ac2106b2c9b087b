r"""The routing task's wiring: topology names, graph statistics, what can reach the query token, the model.

See :mod:`wsfusion.bench.routing` for the protocol and the runs.
"""

from __future__ import annotations

import copy
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
#: Path statistics are exact up to this many nodes, estimated from this many BFS sources beyond.
EXACT_PATHS_MAX_NODES, PATH_SOURCES = 4096, 512


def build_topology(name: str, tokens: int, k: int, seed: int) -> CrossModalGraph | LearnableWSGraph | None:
    """The graph of a topology over ``3 * tokens`` tokens (``None`` for ``dense``), ``N k / 2`` edges each.

    ``lattice`` is the interleaved ring lattice (beta = 0), ``ws-<beta>`` Watts-Strogatz on the
    interleaved ring (``-blocked``: modality blocks on the ring), ``random`` beta = 1, and
    ``bigbird`` one global token (the middle ``text`` token, joined to every node), a ring
    window of ``k/2`` on the interleaved ring, and random pairs for the rest of the budget.
    ``learned-<beta>`` is a :class:`~wsfusion.topology.LearnableWSGraph` starting at that beta
    (``N k / 2`` edges in expectation); ``set`` and ``rigl`` start from the lattice and are
    rewired during training (:class:`~wsfusion.train.Rewirer` with ``edges="attention"``).
    """
    if not _known(name):
        raise ValueError(f"topology must be one of {_EXPECTED}, got {name!r}")
    counts = {m: tokens for m in CrossModalRelay.modalities}
    if name == "dense":
        return None
    if name.startswith("learned-"):
        return LearnableWSGraph(counts, k, float(name[len("learned-"):]), seed=seed, order="interleaved")
    if name in ("lattice", *REWIRED):
        return graphs.build("lattice", counts, k, seed=seed)
    if name == "random":
        return graphs.build("random", counts, k, seed=seed)
    if name.startswith("ws-"):
        beta, _, order = name[3:].partition("-")
        return graphs.build("ws", counts, k, beta=float(beta), seed=seed, order=order or "interleaved")
    return graphs.build("bigbird", counts, k, seed=seed)


def _known(name: str) -> bool:
    if name in TOPOLOGIES or name in REWIRED:
        return True
    for prefix, low in (("learned-", 0.0), ("ws-", -1e-12)):
        if name.startswith(prefix):
            beta, _, order = name[len(prefix):].partition("-")
            try:
                return low < float(beta) < 1.0 and order in ("", "blocked") and (prefix == "ws-" or not order)
            except ValueError:
                return False
    return False


#: What the topology errors list.
_EXPECTED = f"{list(TOPOLOGIES) + list(REWIRED)}, ws-<beta>[-blocked] or learned-<beta in (0, 1)>"


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
    :meth:`set_graph` swaps the graph (a curriculum over lengths): no weight depends on it. The
    forward pass takes the trainer's ``(inputs, mask, input_mask)`` (the relay has neither mask)
    and ``edges=`` (an :class:`~wsfusion.train.attention_rewiring.EdgeGatedModel`).
    """

    def __init__(self, in_dim: int, width: int, heads: int, layers: int, num_classes: int,
                 graph: CrossModalGraph | LearnableWSGraph | None) -> None:
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
        self.set_graph(graph)

    def set_graph(self, graph: CrossModalGraph | LearnableWSGraph | None) -> None:
        """Use ``graph`` from now on (for a learned beta over another length, pass
        :meth:`LearnableWSGraph.with_nodes <wsfusion.topology.LearnableWSGraph.with_nodes>`: one beta)."""
        if (graph is None) != isinstance(self.attention[0], nn.MultiheadAttention):
            raise ValueError("a dense model takes no graph, and a sparse one needs one")
        self.graph, self.eval_graph = graph, None

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
        for i, (attention, ffn) in enumerate(zip(self.attention, self.ffn)):
            z = self.norms[2 * i](h)
            if edge_index is None:
                h = h + attention(z, z, z, need_weights=False)[0]
            else:
                h = h + attention(z, edge_index, edge_weight=edge_weight)
            h = h + ffn(self.norms[2 * i + 1](h))
        query_modality, position = CrossModalRelay.query
        return self.classify(h[:, CrossModalRelay.modalities.index(query_modality) * tokens + position])
