r"""SET / RigL for the graph of attention layers: :class:`~wsfusion.train.Rewirer` with ``edges="attention"``.

Attention edges have no weight of their own, so an edge's importance is the loss change of
removing it, to first order. Every candidate edge :math:`e` gets a gate :math:`w_e` (1 on the
graph's edges, 0 on a pool of sampled non-edges) that scales its attention coefficient
(``edge_weight``), and one forward and backward pass on the step's batch gives

.. math::
    s_e = \Big|\frac{\partial L}{\partial w_e}\Big|,

summed over both directions of a pair. The edges of smallest :math:`s_e` are dropped; as many
non-edges are grown, at random (``"set"``) or those of largest :math:`s_e` (``"rigl"``: the loss
change of opening them). The edge count, symmetry and the absence of self-loops are kept; no
weight depends on the edge set, so nothing else changes.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from wsfusion.graphs import CrossModalGraph
from wsfusion.graphs.edges import both_directions, decode_undirected, sample_non_edges, undirected_keys

__all__ = ["EdgeGatedModel", "rewire_attention_graph", "with_edges"]


class EdgeGatedModel(Protocol):
    """What ``Rewirer(edges="attention")`` needs of a model: its graph, a way to swap it, and a forward
    pass over given edges with a weight per edge (the attention ``edge_weight``)."""

    graph: CrossModalGraph

    def set_graph(self, graph: CrossModalGraph) -> None: ...

    def __call__(self, inputs: Any, mask: Any = None, input_mask: Any = None, *,
                 edges: tuple[Tensor, Tensor] | None = None) -> Tensor: ...


@torch.enable_grad()
def rewire_attention_graph(model: EdgeGatedModel, graph: CrossModalGraph, batch: tuple[Any, Any, Any, Tensor],
                           fraction: float, mode: str, generator: torch.Generator, pool: int = 4) -> CrossModalGraph:
    r"""``graph`` with the ``fraction`` of its undirected edges the loss needs least replaced (module docstring).

    Args:
        model (EdgeGatedModel): Scored with ``model(inputs, mask, input_mask, edges=(edge_index, gates))``.
        graph (CrossModalGraph): The undirected graph to rewire (the model's).
        batch (tuple): ``(inputs, mask, input_mask, labels)`` on the model's device (``trainer.batch``).
        fraction (float): Share of the undirected edges to replace (rounded down).
        mode (str): ``"set"`` (grow at random) or ``"rigl"`` (grow the largest :math:`s_e`).
        generator (torch.Generator): Draws the candidate pool (and SET's choice).
        pool (int): Candidate non-edges per edge of the graph.
    """
    if mode not in ("set", "rigl"):
        raise ValueError(f"mode must be one of ['set', 'rigl'], got {mode!r}")
    n = graph.num_nodes
    edge_keys = torch.unique(undirected_keys(graph.edge_index.cpu(), n))
    count = int(fraction * edge_keys.numel())
    if count == 0:
        return graph
    candidates = sample_non_edges(n, edge_keys, pool * edge_keys.numel(), generator, undirected=True)
    keys = torch.cat([edge_keys, candidates])
    edge_index, pair_id = both_directions(decode_undirected(keys, n), n)
    inputs, mask, input_mask, labels = batch
    device = labels.device
    pair_id = pair_id.to(device)
    gates = torch.cat([torch.ones(edge_keys.numel()), torch.zeros(candidates.numel())]).to(device)[pair_id]
    gates.requires_grad_(True)
    logits = model(inputs, mask, input_mask, edges=(edge_index.to(device), gates))
    (grad,) = torch.autograd.grad(F.cross_entropy(logits.float(), labels), gates)
    score = torch.zeros(keys.numel(), device=device).index_add_(0, pair_id, grad.abs()).cpu()
    existing, candidate = score[:edge_keys.numel()], score[edge_keys.numel():]
    keep = edge_keys[existing.argsort(descending=True, stable=True)[:edge_keys.numel() - count]]
    if mode == "set":
        grow = candidates[torch.randperm(candidates.numel(), generator=generator)[:count]]
    else:
        grow = candidates[candidate.argsort(descending=True, stable=True)[:count]]
    pairs = decode_undirected(torch.cat([keep, grow]), n)
    return with_edges(graph, torch.cat([pairs, pairs.flip(0)], dim=1))


def with_edges(graph: CrossModalGraph, edge_index: Tensor) -> CrossModalGraph:
    """``graph``'s nodes and metadata (``k``, seed, node order) over other edges ``edge_index`` ``[2, E]``."""
    return CrossModalGraph.from_edge_index(edge_index, graph.node_counts, k=graph.k, seed=graph.seed,
                                           order=graph.order, ring_order=graph.ring_order)
