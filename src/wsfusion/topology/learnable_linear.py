r""":class:`LearnableWSLinear`: a ``WSLinear`` over the candidate edges of a :class:`LearnableWSGraph`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from wsfusion.graphs import CrossModalGraph
from wsfusion.graphs.edges import directed_keys
from wsfusion.nn import EdgeWeightedLinear, WSLinear
from wsfusion.nn.init import in_degree_uniform_
from wsfusion.topology.learnable import LearnableWSGraph, learnable_options, straight_through

__all__ = ["LearnableWSLinear"]


class LearnableWSLinear(EdgeWeightedLinear):
    r""":class:`~wsfusion.nn.WSLinear` over a :class:`LearnableWSGraph`: sparse linear layer with gated edges.

    One weight per directed *candidate* edge; the effective weight is the
    weight times the gate of its undirected candidate, so the loss reaches
    :math:`\beta` through the gates:

    .. math::
        y_t = \sum_{s \to t \,\in\, \text{candidates}} z_{\{s,t\}}\, w_{s \to t}\, x_s + b_t,
        \qquad z \sim \text{LearnableWSGraph} \text{ (training)}, \quad z = \text{mode (eval)}

    computed by the same code as ``WSLinear`` (their base
    :class:`~wsfusion.nn.ws_linear.EdgeWeightedLinear`: CSR SpMM / SDDMM), so its cost is that of a
    ``WSLinear`` on the :math:`2(L + C)` candidates (twice the WS edges with
    the default pool).  Weights start as in ``WSLinear`` with the *expected*
    in-degree :math:`\sum_{s} p_{\{s,t\}}` as fan-in.  Drop-in for
    ``WSLinear`` in ``SparseWSFusion`` (``x [..., N] -> [..., N]``), e.g.
    ``LearnableWSLinear.from_graph(graph, bias=True)``; after training,
    :meth:`to_ws_linear` exports a plain ``WSLinear`` on the evaluation graph.

    Args:
        nodes (Mapping[str, int]): modality -> node count.
        k (int): even ring degree.
        beta_init (float): initial :math:`\beta \in (0, 1)`.
        bias (bool): learn a bias per node. (default: :obj:`False`)
        topology (LearnableWSGraph, optional): share an existing stochastic
            graph (each call still draws its own sample); ``nodes``, ``k``,
            ``beta_init`` and ``topology_options`` are then ignored.
        **topology_options: passed to :class:`LearnableWSGraph` (``seed``,
            ``order``, ``per_pair``, ``edge_logits``, ``temperature``, ...).

    Shapes:
        - **input:** :math:`(*, N)`
        - **output:** :math:`(*, N)`

    Example:
        >>> layer = LearnableWSLinear({"visual": 64, "text": 64, "audio": 64}, k=6, beta_init=0.3)
        >>> layer(torch.randn(32, 192)).shape
        torch.Size([32, 192])
    """

    def __init__(
        self,
        nodes: Mapping[str, int] | None = None,
        k: int = 6,
        beta_init: float = 0.3,
        *,
        bias: bool = False,
        topology: LearnableWSGraph | None = None,
        **topology_options: Any,
    ) -> None:
        super().__init__()
        if topology is None:
            if nodes is None:
                raise ValueError("LearnableWSLinear needs nodes (modality -> node count) or a topology")
            topology = LearnableWSGraph(nodes, k, beta_init, **topology_options)
        elif not isinstance(topology, LearnableWSGraph):
            raise TypeError(f"topology must be a LearnableWSGraph, got {type(topology).__name__}")
        self.topology = topology
        self.num_nodes = topology.num_nodes
        self.weight = nn.Parameter(torch.empty(topology.edge_index.size(1)))
        self.bias = nn.Parameter(torch.empty(self.num_nodes)) if bias else None
        self._set_structure(topology.edge_index)
        self.reset_parameters()

    @classmethod
    def from_graph(cls, graph: CrossModalGraph, bias: bool = False, **options: Any) -> "LearnableWSLinear":
        """Same nodes, ``k``, ``seed`` and ``order`` as a WS ``graph`` (its ``beta`` clipped to [0.01, 0.99]
        as ``beta_init``; :func:`learnable_options`), so ``layer_class=LearnableWSLinear.from_graph`` swaps it
        into ``SparseWSFusion``."""
        if not isinstance(graph, CrossModalGraph):
            raise TypeError(f"from_graph needs a CrossModalGraph, got {type(graph).__name__}")
        if graph.k is None:
            raise ValueError("from_graph needs a graph built by ws_cross_modal_graph (graph.k is None)")
        twin = learnable_options(graph, **options)
        return cls(twin.pop("nodes"), twin.pop("k"), twin.pop("beta_init"), bias=bias, **twin)

    def reset_parameters(self) -> None:
        """The topology back to its initial beta, then weights scaled for the expected in-degrees."""
        topo = self.topology
        topo.reset_parameters()
        with torch.no_grad():
            p = topo.probabilities()[topo.pair_id]
            fan_in = torch.zeros(self.num_nodes, dtype=p.dtype, device=p.device).index_add_(0, topo.edge_index[1], p)
        in_degree_uniform_(self.weight, fan_in[topo.edge_index[1]])
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    @property
    def beta(self) -> Tensor:
        r"""Current :math:`\beta` (``[R]``)."""
        return self.topology.beta

    @property
    def edge_index(self) -> Tensor:
        """``[2, 2(L + C)]`` directed candidate edges (the order of :attr:`weight`)."""
        return self.topology.edge_index

    def effective_weight(self) -> Tensor:
        r"""``[2(L + C)]`` gated edge weights :math:`w_e z_e` (a fresh sample in training).

        With hard gates in training the value is :math:`w_e z_e` with
        :math:`z_e \in \{0, 1\}`, and the gradients are those of two
        straight-through estimators: to the gate, :math:`w_e` (through the
        relaxed sample :math:`\tilde z_e`, as :meth:`LearnableWSGraph.sample`),
        and to the weight, 1 on a kept edge and :math:`\tilde z_e` on a dropped
        one. A plain product would give a dropped edge's weight no gradient at
        all, so a shortcut would open with an untrained weight, cost loss, and
        close again (rich get richer); here it trains in proportion to how
        close its gate is to opening.
        """
        topology = self.topology
        if not (self.training and topology.training and topology.hard):
            return self.weight * topology()
        soft = topology.relaxed_sample()[topology.pair_id]
        hard, gate = straight_through(soft)
        w = self.weight
        weight_slope = torch.where(hard > 0, torch.ones_like(soft), soft).detach()
        through_weight = w * weight_slope - (w * weight_slope).detach()  # value 0, gradient to w
        through_gate = w.detach() * (gate - hard)  # value 0, gradient to the gate
        return (w * hard).detach() + through_weight + through_gate

    def forward(self, x: Tensor) -> Tensor:
        self.check_node_features(x)
        return self.edge_linear(self.effective_weight(), x)

    def export_graph(self) -> CrossModalGraph:
        """The deterministic evaluation graph (see :meth:`LearnableWSGraph.to_graph`)."""
        return self.topology.to_graph("mode")

    @torch.no_grad()
    def to_ws_linear(self) -> WSLinear:
        """A plain :class:`~wsfusion.nn.WSLinear` on :meth:`export_graph` with the kept edges' weights
        (equal outputs to this layer in ``eval()`` mode)."""
        graph = self.export_graph()
        layer = WSLinear(graph, bias=self.bias is not None).to(device=self.weight.device, dtype=self.weight.dtype)
        n = self.num_nodes
        cand = directed_keys(self.topology.edge_index, n)
        pos = torch.searchsorted(cand, directed_keys(layer.edge_index, n))
        layer.weight.copy_(self.weight[pos])
        if self.bias is not None:
            layer.bias.copy_(self.bias)
        return layer

    def __repr__(self) -> str:
        t = self.topology
        return (
            f"{self.__class__.__name__}(num_nodes={self.num_nodes}, k={t.k}, beta={t.mean_beta():.3f}, "
            f"candidates={self.weight.numel()}, bias={self.bias is not None})"
        )
