r"""The parts the graph fusions compose: where the graph comes from, how nodes are built, where the
LayerNorm sits, how nodes are read out.

Each mode of :class:`~wsfusion.fusion.WSGraphFusion` is one small part, so that its forward reads as
a composition (nodes -> blocks over the graph -> readout):

* **graph source** (``topology=``): :func:`fusion_graph` builds the graph of a registry topology
  (:func:`wsfusion.graphs.build`; ``"ws"`` by default) or checks a given one, and the module
  registered as ``topology`` gives the gates of each forward: :class:`FixedTopology` (none) or a
  :class:`~wsfusion.topology.LearnableWSGraph` (``topology="learnable"``, built by
  :func:`learnable_topology`);
* **node builder** (``segments`` or ``tokens``): :class:`SegmentNodes` / :class:`TokenNodes`, the
  per-modality projections (registered as ``proj``, so their state-dict keys stay ``proj.<m>.*``);
* **block order** (``norm=``): :class:`PostNorm` / :class:`PreNorm`, one residual sub-layer with its
  LayerNorm and dropout;
* **readout** (``readout=``): :class:`MeanReadout` / :class:`AttentionReadout`.

The parts hold no parameters of their own (the fusion keeps its parameters under their historical
names), so state dicts, parameter counts and the initialisation order are those of one flat module.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from wsfusion._validation import check_positive_int, format_shape
from wsfusion.fusion.base import as_tokens
from wsfusion.graphs import CrossModalGraph, available, build, ws_cross_modal_graph

#: The learnable topology: a WS graph whose rewiring probability is trained (wsfusion.topology).
LEARNABLE = "learnable"


def topology_names(learnable: bool = True) -> tuple[str, ...]:
    """The values of a fusion's ``topology=``: the graph registry's names, plus ``"learnable"``."""
    return available() + ((LEARNABLE,) if learnable else ())


def check_topology(what: str, topology: object, options: Mapping[str, object] | None, learnable: bool = True) -> str:
    """``topology`` is a registry name (or ``"learnable"`` where allowed); ``topology_options`` belong to
    ``"learnable"`` (:class:`~wsfusion.topology.LearnableWSGraph`) or to a registry builder other than ``"ws"``."""
    allowed = topology_names(learnable)
    if topology == "fixed":
        raise ValueError(f"{what}: topology='fixed' is now topology='ws' (the fixed Watts-Strogatz graph, the default): "
                         f"the word names a graph of wsfusion.graphs.build; topology must be one of {allowed}")
    if topology not in allowed:
        extra = "" if learnable else " (no 'learnable': this layer has no edge gates)"
        raise ValueError(f"{what}: topology must be one of {allowed}{extra}, got {topology!r}")
    if options and topology == "ws":
        raise ValueError(f"{what}: topology_options are the options of a 'learnable' graph or of another registry "
                         "topology (e.g. hubs= of 'hub'); the 'ws' graph takes the fusion's own k, beta, seed, order")
    return str(topology)


def fusion_graph(
    owner: type, modality_dims: Mapping[str, int], graph: CrossModalGraph | None, *, topology: str,
    nodes_per_modality: int | Mapping[str, int], k: int, seed: int | None,
    topology_options: Mapping[str, object] | None = None, **ws_options: Any,
) -> CrossModalGraph:
    """The graph a fusion's nodes live on: ``graph`` (checked against the modalities), or the ``topology``
    of :func:`wsfusion.graphs.build` over these node counts with ``topology_options`` as the builder's
    options (``"ws"`` and ``"learnable"``: the WS graph of ``k``, ``beta``, ``seed``, ``order``,
    ``self_loops``, the learnable one's candidates start from it).

    ``beta``, ``order`` and ``self_loops`` shape only the WS topologies: another ``topology`` with one of
    them off ``owner``'s default is a ``ValueError`` rather than an option silently ignored.
    """
    what = owner.__name__
    ws = topology in ("ws", LEARNABLE)
    if not ws:
        defaults = inspect.signature(owner).parameters
        for name, value in ws_options.items():
            if name in defaults and value != defaults[name].default:
                raise ValueError(f"{what}: {name}={value!r} shapes the 'ws' and 'learnable' topologies only; "
                                 f"topology={topology!r} has its own layout")
    if graph is not None:
        if not isinstance(graph, CrossModalGraph):
            raise TypeError(f"{what}: graph must be a CrossModalGraph, got {type(graph).__name__}")
        if not ws:
            raise ValueError(f"{what}: give graph= or topology={topology!r}, not both")
        if set(graph.modalities) != set(modality_dims):
            raise ValueError(
                f"{what}: graph modalities {list(graph.modalities)} do not match the features' {list(modality_dims)}"
            )
        return graph
    if isinstance(nodes_per_modality, Mapping):
        if set(nodes_per_modality) != set(modality_dims):
            raise ValueError(
                f"{what}: node counts are given for {list(nodes_per_modality)} "
                f"but the modalities are {list(modality_dims)}"
            )
        nodes = {m: nodes_per_modality[m] for m in modality_dims}
    else:
        nodes = {m: check_positive_int(nodes_per_modality, "nodes_per_modality") for m in modality_dims}
    if ws:  # the registry's "ws" builder, with the fusions' WS options (self_loops included)
        return ws_cross_modal_graph(nodes, k, seed=seed, **ws_options)
    return build(topology, nodes, k, seed=seed, **dict(topology_options or {}))


def learnable_topology(graph: CrossModalGraph, k: int, beta: float, order: str,
                       options: Mapping[str, object] | None) -> nn.Module:
    """The :class:`~wsfusion.topology.LearnableWSGraph` twin of ``graph`` (:func:`~wsfusion.topology.learnable_options`)."""
    from wsfusion.topology import LearnableWSGraph, learnable_options

    twin = learnable_options(graph, k=k, beta=beta, order=order, **dict(options or {}))
    return LearnableWSGraph(twin.pop("nodes"), twin.pop("k"), **twin)


class FixedTopology(nn.Module):
    """Graph source of a fixed topology: no gates (``forward() -> None``), nothing to learn."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def forward(self) -> None:
        return None

    def extra_repr(self) -> str:
        return repr(self.name)


class _NodeBuilder(nn.ModuleDict):
    """One projection per modality; ``forward`` gives the ``[B, N, node_dim]`` nodes (zeros for absent keys)."""

    token_nodes: bool

    def __init__(self, modality_dims: Mapping[str, int], graph: CrossModalGraph, node_dim: int) -> None:
        super().__init__()
        # (modality, count) pairs in node order: the loop of every forward reads them.
        self.counts = tuple(graph.node_counts.items())
        self.node_dim = node_dim
        counts = dict(self.counts)
        for m, d in modality_dims.items():
            self[m] = nn.Linear(d, self.width(counts[m]))

    def width(self, count: int) -> int:
        raise NotImplementedError

    def project(self, m: str, x: Tensor, count: int, batch: int) -> Tensor:
        raise NotImplementedError

    def forward(self, features: Mapping[str, Tensor], batch: int) -> Tensor:
        ref = next(iter(features.values()))
        return torch.cat([
            self.project(m, features[m], count, batch) if m in features else ref.new_zeros(batch, count, self.node_dim)
            for m, count in self.counts
        ], dim=1)

    def check(self, features: Mapping[str, Tensor], what: str) -> None:
        """Nothing to check for segments (the base checks refuse token sequences)."""


class SegmentNodes(_NodeBuilder):
    r"""Node builder for pooled inputs: :math:`\mathbf{z}_m \in \mathbb{R}^{D_m}` projected to ``n_m`` segment nodes."""

    token_nodes = False

    def width(self, count: int) -> int:
        return count * self.node_dim

    def project(self, m: str, x: Tensor, count: int, batch: int) -> Tensor:
        return self[m](x).view(batch, count, self.node_dim)


class TokenNodes(_NodeBuilder):
    """Node builder for token sequences ``[B, T_m, D_m]``: each token projected to one node."""

    token_nodes = True

    def width(self, count: int) -> int:
        return self.node_dim

    def project(self, m: str, x: Tensor, count: int, batch: int) -> Tensor:
        return self[m](as_tokens(x))

    def check(self, features: Mapping[str, Tensor], what: str) -> None:
        """Every sequence has its modality's node count of tokens."""
        counts = dict(self.counts)
        for m, x in features.items():
            if as_tokens(x).shape[1] != counts[m]:
                raise ValueError(
                    f"{what}: {m!r} must be a token sequence [B, {counts[m]}, {self[m].in_features}] "
                    f"(the graph has {counts[m]} {m} nodes), got {format_shape(tuple(x.shape))}"
                )


class PostNorm:
    r"""Block order ``norm="post"``: :math:`\mathbf{X} \leftarrow \mathrm{LN}(\mathbf{X} + \mathrm{Dropout}(f(\mathbf{X})))`.

    :meth:`around` places a block's LayerNorm: the module applied to the sub-layer's input and the one
    applied to the residual sum (one of them the identity). The fusion resolves the pairs once, so
    its loop calls only torch modules around each conv: a conv's compile graph break then stays one
    break (a wsfusion function around it would be compiled as a frame of its own).
    """

    name = "post"
    final_norm = False

    @staticmethod
    def around(norm: nn.Module) -> tuple[nn.Module, nn.Module]:
        """``(before, after)``: ``X <- after(X + Dropout(f(before(X))))``."""
        return nn.Identity(), norm


class PreNorm(PostNorm):
    r"""Block order ``norm="pre"`` (Transformer-style): :math:`\mathbf{X} \leftarrow \mathbf{X} + \mathrm{Dropout}(f(\mathrm{LN}(\mathbf{X})))`,
    and a final LN after the last block."""

    name = "pre"
    final_norm = True

    @staticmethod
    def around(norm: nn.Module) -> tuple[nn.Module, nn.Module]:
        return norm, nn.Identity()


class MeanReadout(nn.Module):
    """Readout ``"mean"``: each modality's present nodes averaged, concatenated ``[B, M * node_dim]``
    (an absent modality's slot is zero)."""

    def __init__(self, graph: CrossModalGraph) -> None:
        super().__init__()
        self.slices = tuple(graph.node_slices.values())

    def forward(self, x: Tensor, node_mask: Tensor, query: Tensor | None = None) -> Tensor:
        present = node_mask.unsqueeze(-1).to(x.dtype)
        slots = []
        for s in self.slices:
            count = present[:, s].sum(dim=1).clamp(min=1.0)
            slots.append((x[:, s] * present[:, s]).sum(dim=1) / count)
        return torch.cat(slots, dim=-1)


class AttentionReadout(nn.Module):
    r"""Readout ``"attention"``: softmax pooling of the present nodes against a learned query
    :math:`\mathbf{q}`, :math:`\sum_i \mathrm{softmax}_i(\mathbf{q}^\top \mathbf{x}_i / \sqrt{d})\, \mathbf{x}_i`
    ``[B, node_dim]`` (a sample without present nodes gives zero)."""

    def forward(self, x: Tensor, node_mask: Tensor, query: Tensor | None = None) -> Tensor:
        assert query is not None
        score = (x @ query) / math.sqrt(x.shape[-1])
        score = score.masked_fill(~node_mask, torch.finfo(score.dtype).min)
        weights = torch.softmax(score, dim=1) * node_mask.to(x.dtype)  # all-missing sample -> zero
        return (weights.unsqueeze(-1) * x).sum(dim=1)
