r"""Learnable beta: a stochastic Watts-Strogatz graph whose rewiring probability is trained.

``networkx.watts_strogatz_graph`` takes ``beta`` as a Python float, so a
``beta`` read with ``.item()`` never sees a gradient.  Here the graph is a
set of *candidate* edges with relaxed Bernoulli gates (binary concrete,
Maddison et al. 2017; Jang et al. 2017), and ``beta`` sets the gates'
keep-probabilities, so the loss reaches ``beta`` through the gated edge
weights of :class:`LearnableWSLinear`.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from wsfusion._validation import check_fraction, check_int, check_positive_number
from wsfusion.graphs import CrossModalGraph
from wsfusion.graphs._checks import check_k, check_nodes, check_order
from wsfusion.graphs.edges import (
    both_directions,
    decode_undirected,
    directed_keys,
    sample_non_edges,
    undirected_keys,
)
from wsfusion.graphs.builders import interleaved_ring_order, ring_lattice
from wsfusion.nn import EdgeWeightedLinear, WSLinear
from wsfusion.nn.init import in_degree_uniform_

__all__ = ["LearnableWSGraph", "LearnableWSLinear"]

_EPS = 1e-6


def _logit(p: Tensor) -> Tensor:
    p = p.clamp(_EPS, 1.0 - _EPS)
    return torch.log(p) - torch.log1p(-p)



def straight_through(soft: Tensor) -> tuple[Tensor, Tensor]:
    """``(hard, gate)`` for relaxed gates ``soft`` in (0, 1): ``hard`` thresholded at 0.5, and ``gate``
    equal to ``hard`` in value with the gradient of ``soft`` (the straight-through estimator)."""
    hard = (soft > 0.5).to(soft.dtype)
    return hard, hard + (soft - soft.detach())

class LearnableWSGraph(nn.Module):
    r"""A Watts-Strogatz graph with a learnable rewiring probability :math:`\beta`.

    **Candidates.** The :math:`L = Nk/2` ring-lattice edges (the WS graph at
    :math:`\beta = 0`, on the ring laid out by ``order``) plus a pool of
    :math:`C` long-range *shortcut* candidates, non-lattice pairs drawn once,
    uniformly, from ``seed``.  Each undirected candidate :math:`e` has one
    gate :math:`z_e \in \{0, 1\}`, shared by both directions, so every sampled
    graph is undirected.

    **Gate probabilities.** Lattice edges are kept with probability
    :math:`1 - \beta` (a rewired edge leaves the lattice); shortcuts are on
    with the probability that keeps the expected edge count at the WS budget
    :math:`L`:

    .. math::
        p_e = 1 - \beta_{r(e)} \;\; (e \in \text{lattice}), \qquad
        p_e = p_S = \frac{1}{C} \sum_{l \in \text{lattice}} \beta_{r(l)} \;\; (e \in \text{shortcuts}),
        \qquad \mathbb{E}\Big[\sum_e z_e\Big] = L,

    with one :math:`\beta` for the whole graph, or (``per_pair=True``) one
    per unordered modality pair :math:`r(e)` of the lattice edge's endpoints
    (shortcuts stay uniform, as WS rewiring sends an edge to a uniformly
    random node).  With the default pool :math:`C = L`, :math:`p_S = \beta`.
    :math:`\beta = \sigma(\theta)` is parametrised by its logit ``beta_logit``,
    so the lattice gate logit is just :math:`-\theta`.  ``edge_logits=True``
    adds a free, zero-initialised logit per candidate :math:`a_e`
    (:math:`\mathrm{logit}\, p_e + a_e`), which moves the expected count
    off the budget as it trains (the evaluation graph still keeps it).

    **Training** (``module.train()``): binary-concrete samples

    .. math::
        \tilde z_e = \sigma\!\Big(\frac{\mathrm{logit}\, p_e + \log u - \log(1 - u)}{\tau}\Big),
        \quad u \sim \mathcal{U}(0, 1), \qquad
        z_e = \mathbb{1}[\tilde z_e > 1/2] + \tilde z_e - \mathrm{sg}(\tilde z_e),

    exactly 0/1 in value (:math:`P(z_e = 1) = p_e`) with the straight-through
    gradient of the relaxed sample (``hard=False`` returns :math:`\tilde z_e`).
    The temperature :math:`\tau` anneals geometrically from ``temperature``
    to ``final_temperature`` as :meth:`set_progress` goes from 0 to 1 (see
    :class:`~wsfusion.topology.TemperatureSchedule`).

    **Evaluation** (``module.eval()``): deterministic, the most probable
    graph with exactly :math:`L` edges: the :math:`L` candidates with the
    largest gate logits (ties to the lower candidate index).  With a single
    :math:`\beta` and no per-edge logits this is the lattice for
    :math:`\beta < 1/2` and the shortcut pool for :math:`\beta > 1/2`; use
    :meth:`to_graph` with ``mode="sample"`` for a seeded WS-like sample.

    Args:
        nodes (Mapping[str, int]): modality -> node count (node ids blocked).
        k (int): even ring degree, :math:`2 \le k < N`.
        beta_init (float): initial :math:`\beta \in (0, 1)`.
        num_shortcuts (int, optional): shortcut pool size :math:`C`,
            :math:`L \le C \le N(N-1)/2 - L` (default :math:`L`).
        seed (int): seed of the shortcut pool.
        order (str): ``"blocked"`` or ``"interleaved"`` ring layout.
        per_pair (bool): one :math:`\beta` per unordered modality pair.
        edge_logits (bool): learn a logit offset per candidate edge.
        temperature (float): initial relaxation temperature :math:`\tau > 0`.
        final_temperature (float, optional): temperature at progress 1
            (default: ``temperature``, no annealing).
        hard (bool): straight-through hard samples in training.

    Shapes:
        - **forward output:** :math:`(2(L + C),)` gates per directed
          candidate edge, in :attr:`edge_index` order.

    Example:
        >>> topo = LearnableWSGraph({"visual": 64, "text": 64, "audio": 64}, k=6, beta_init=0.3)
        >>> topo.edge_index.shape, topo().shape
        (torch.Size([2, 2304]), torch.Size([2304]))
        >>> topo.eval().to_graph().num_edges
        576
    """

    def __init__(
        self,
        nodes: Mapping[str, int],
        k: int = 6,
        beta_init: float = 0.3,
        *,
        num_shortcuts: int | None = None,
        seed: int = 0,
        order: str = "blocked",
        per_pair: bool = False,
        edge_logits: bool = False,
        temperature: float = 1.0,
        final_temperature: float | None = None,
        hard: bool = True,
    ) -> None:
        super().__init__()
        names, counts = check_nodes(nodes)
        n = sum(counts)
        self.nodes = dict(zip(names, counts))
        self.num_nodes = n
        self.k = check_k(k, n)
        beta_init = check_fraction(beta_init, "beta_init", "(0, 1)")
        self.order = check_order(order)
        self.seed = check_int(seed, "seed", 0)
        self.temperature_start = check_positive_number(temperature, "temperature")
        self.temperature_end = (
            self.temperature_start if final_temperature is None else check_positive_number(final_temperature, "final_temperature")
        )
        self.temperature = self.temperature_start
        self.hard = bool(hard)
        self.per_pair = bool(per_pair)

        ring = interleaved_ring_order(counts) if order == "interleaved" else torch.arange(n)
        self.register_buffer("ring_order", ring, persistent=False)
        lattice_keys = torch.unique(undirected_keys(ring_lattice(n, self.k, ring_order=ring), n))
        num_lattice = lattice_keys.numel()  # = N k / 2 since k < N
        available = n * (n - 1) // 2 - num_lattice
        if num_shortcuts is None:
            num_shortcuts = num_lattice
        if isinstance(num_shortcuts, bool) or not isinstance(num_shortcuts, numbers.Integral) or not (
            num_lattice <= num_shortcuts <= available
        ):
            raise ValueError(
                f"num_shortcuts must be an integer in [N*k/2, N(N-1)/2 - N*k/2] = [{num_lattice}, {available}] "
                f"so that the edge budget can be kept for every beta, got {num_shortcuts!r}"
                + (" (the graph is too small: needs N >= 2k + 1)" if available < num_lattice else "")
            )
        gen = torch.Generator().manual_seed(self.seed)
        shortcut_keys = sample_non_edges(n, lattice_keys, int(num_shortcuts), gen, undirected=True).sort().values
        pairs = decode_undirected(torch.cat([lattice_keys, shortcut_keys]), n)
        self.num_lattice = num_lattice
        self.num_shortcuts = int(num_shortcuts)
        is_lattice = torch.zeros(pairs.size(1), dtype=torch.bool)
        is_lattice[:num_lattice] = True
        edge_index, pair_id = both_directions(pairs, n)

        node_modality = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
        m = len(counts)
        table = torch.zeros(m, m, dtype=torch.long)
        r = 0
        for a in range(m):
            for b in range(a, m):
                table[a, b] = table[b, a] = r
                r += 1
        self.pair_names = [(names[a], names[b]) for a in range(m) for b in range(a, m)] if per_pair else [("all", "all")]
        relation = table[node_modality[pairs[0]], node_modality[pairs[1]]] if per_pair else torch.zeros(pairs.size(1), dtype=torch.long)
        self.register_buffer("pairs", pairs, persistent=False)
        self.register_buffer("is_lattice", is_lattice, persistent=False)
        self.register_buffer("pair_relation", relation, persistent=False)
        self.register_buffer("edge_index", edge_index, persistent=False)
        self.register_buffer("pair_id", pair_id, persistent=False)
        self.register_buffer("is_cross_modal", node_modality[pairs[0]] != node_modality[pairs[1]], persistent=False)
        self.beta_init = float(beta_init)
        self.beta_logit = nn.Parameter(torch.empty(len(self.pair_names)))
        self.edge_logit = nn.Parameter(torch.empty(pairs.size(1))) if edge_logits else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Beta back to ``beta_init`` (every pair), per-edge logit offsets to 0."""
        nn.init.constant_(self.beta_logit, _logit(torch.tensor(self.beta_init)).item())
        if self.edge_logit is not None:
            nn.init.zeros_(self.edge_logit)

    # ------------------------------------------------------------------ #
    @property
    def num_candidates(self) -> int:
        """Undirected candidate edges :math:`L + C`."""
        return self.pairs.size(1)

    @property
    def beta(self) -> Tensor:
        r"""``[R]`` current :math:`\beta` (one, or one per unordered modality pair), differentiable."""
        return torch.sigmoid(self.beta_logit)

    def mean_beta(self) -> float:
        r"""Lattice-weighted mean :math:`\beta` (the rewired fraction of the lattice), a float."""
        with torch.no_grad():
            return float(self.beta[self.pair_relation[self.is_lattice]].mean())

    def set_progress(self, progress: float) -> float:
        r"""Anneal :math:`\tau = \tau_0 (\tau_1 / \tau_0)^{\text{progress}}`; returns the new temperature."""
        progress = min(max(float(progress), 0.0), 1.0)
        self.temperature = self.temperature_start * (self.temperature_end / self.temperature_start) ** progress
        return self.temperature

    def gate_logits(self) -> Tensor:
        """``[L + C]`` logits of the keep-probabilities of the undirected candidates (differentiable)."""
        lattice = self.is_lattice
        beta = self.beta[self.pair_relation]
        p_shortcut = beta[lattice].sum() / self.num_shortcuts
        logits = torch.where(lattice, -self.beta_logit[self.pair_relation], _logit(p_shortcut).expand_as(beta))
        if self.edge_logit is not None:
            logits = logits + self.edge_logit
        return logits

    def probabilities(self) -> Tensor:
        """``[L + C]`` keep-probabilities of the undirected candidates."""
        return torch.sigmoid(self.gate_logits())

    def expected_num_edges(self) -> Tensor:
        """Expected number of undirected edges of a sample (:math:`L` without per-edge logits)."""
        return self.probabilities().sum()

    def relaxed_sample(self, generator: torch.Generator | None = None) -> Tensor:
        r"""``[L + C]`` binary-concrete samples :math:`\tilde z_e` (differentiable, in (0, 1))."""
        logits = self.gate_logits()
        u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
        u = u.clamp(_EPS, 1.0 - _EPS)
        return torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / self.temperature)

    def sample(self, hard: bool | None = None, generator: torch.Generator | None = None) -> Tensor:
        """``[L + C]`` relaxed Bernoulli gates (straight-through 0/1 when ``hard``), differentiable."""
        hard = self.hard if hard is None else hard
        soft = self.relaxed_sample(generator)
        if not hard:
            return soft
        return straight_through(soft)[1]

    @torch.no_grad()
    def mode(self) -> Tensor:
        """``[L + C]`` 0/1 gates of the most probable graph with exactly :math:`L` edges (deterministic)."""
        logits = self.gate_logits()
        order = torch.sort(logits, descending=True, stable=True).indices
        gates = torch.zeros_like(logits)
        gates[order[: self.num_lattice]] = 1.0
        return gates

    def forward(self) -> Tensor:
        """Gates per directed candidate edge (``[2(L + C)]``, :attr:`edge_index` order): a sample in
        training, the most probable graph in evaluation."""
        gates = self.sample() if self.training else self.mode()
        return gates[self.pair_id]

    @torch.no_grad()
    def to_graph(self, mode: str = "mode", generator: torch.Generator | None = None) -> CrossModalGraph:
        """The current graph as a :class:`~wsfusion.graphs.CrossModalGraph` (``stats()`` etc.).

        Args:
            mode (str): ``"mode"`` (deterministic, the evaluation graph) or
                ``"sample"`` (a hard sample, from ``generator`` if given).
        """
        if mode == "mode":
            gates = self.mode()
        elif mode == "sample":
            gates = self.sample(hard=True, generator=generator)
        else:
            raise ValueError(f"mode must be 'mode' or 'sample', got {mode!r}")
        keep = gates[self.pair_id] > 0.5
        return CrossModalGraph.from_edge_index(
            self.edge_index[:, keep].cpu(), self.nodes, k=self.k, beta=self.mean_beta(), seed=self.seed,
            order=self.order, ring_order=self.ring_order.cpu(),
        )

    def with_nodes(self, nodes: Mapping[str, int]) -> "LearnableWSGraph":
        """The same learnable topology over other node counts, **sharing** this graph's ``beta_logit``
        parameter (the same tensor, so an optimiser that holds it trains both): a curriculum over
        sequence lengths learns one beta. Candidates are drawn anew for ``nodes`` from the same seed;
        the temperature schedule and options carry over. Per-edge logits depend on the candidates,
        so a graph with ``edge_logits=True`` cannot be carried over (``ValueError``)."""
        if self.edge_logit is not None:
            raise ValueError("with_nodes shares beta only: a graph with edge_logits=True has per-candidate "
                             "parameters that do not exist for other node counts")
        graph = type(self)(nodes, self.k, self.beta_init, seed=self.seed, order=self.order, per_pair=self.per_pair,
                           temperature=self.temperature_start, final_temperature=self.temperature_end, hard=self.hard)
        if graph.beta_logit.shape != self.beta_logit.shape:
            raise ValueError(f"with_nodes keeps the modality pairs: {list(nodes)} has other pairs than {list(self.nodes)}")
        graph.beta_logit = self.beta_logit
        graph.temperature = self.temperature
        return graph.to(self.beta_logit.device)

    def extra_repr(self) -> str:
        return (
            f"num_nodes={self.num_nodes}, k={self.k}, beta={self.mean_beta():.3f}, lattice={self.num_lattice}, "
            f"shortcuts={self.num_shortcuts}, per_pair={self.per_pair}, edge_logits={self.edge_logit is not None}, "
            f"temperature={self.temperature:.3g}"
        )


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
        as ``beta_init``), so ``layer_class=LearnableWSLinear.from_graph`` swaps it into ``SparseWSFusion``."""
        if not isinstance(graph, CrossModalGraph):
            raise TypeError(f"from_graph needs a CrossModalGraph, got {type(graph).__name__}")
        if graph.k is None:
            raise ValueError("from_graph needs a graph built by ws_cross_modal_graph (graph.k is None)")
        beta = 0.3 if graph.beta is None else min(max(graph.beta, 0.01), 0.99)
        options.setdefault("seed", graph.seed if graph.seed is not None else 0)
        options.setdefault("order", graph.order or "blocked")
        return cls(dict(graph.node_counts), graph.k, options.pop("beta_init", beta), bias=bias, **options)

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
