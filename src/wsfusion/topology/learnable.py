r"""Learnable beta: a stochastic Watts-Strogatz graph whose rewiring probability is trained.

``networkx.watts_strogatz_graph`` takes ``beta`` as a Python float, so a
``beta`` read with ``.item()`` never sees a gradient.  Here the graph is a
set of *candidate* edges with relaxed Bernoulli gates (binary concrete,
Maddison et al. 2017; Jang et al. 2017), and ``beta`` sets the gates'
keep-probabilities, so the loss reaches ``beta`` through the gated edge
weights of :class:`~wsfusion.topology.LearnableWSLinear` (its own module,
:mod:`wsfusion.topology.learnable_linear`) or the convs' ``edge_weight``.
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
from wsfusion.graphs.edges import both_directions, decode_undirected, sample_non_edges, undirected_keys
from wsfusion.graphs.builders import interleaved_ring_order, ring_lattice

__all__ = ["LearnableWSGraph", "learnable_options", "straight_through"]

_EPS = 1e-6


def _logit(p: Tensor) -> Tensor:
    p = p.clamp(_EPS, 1.0 - _EPS)
    return torch.log(p) - torch.log1p(-p)



#: ``beta_init`` of a learnable twin is the WS graph's ``beta`` clipped into this range (the gates'
#: logits are finite only inside (0, 1)).
BETA_INIT_RANGE = (0.01, 0.99)


def learnable_options(
    graph: CrossModalGraph, *, k: int | None = None, beta: float | None = None, order: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    r"""Keywords of :class:`LearnableWSGraph` for the learnable twin of a WS ``graph``.

    The twin has the graph's nodes, ``k``, ``seed`` and ``order``, and its
    ``beta`` clipped to :data:`BETA_INIT_RANGE` as ``beta_init``. Where the
    graph does not record one (a graph built from an edge list), ``k``,
    ``beta`` and ``order`` fall back to the arguments (``beta``: 0.3,
    ``order``: ``"blocked"``; ``seed``: 0). Explicit ``options`` win over
    all of these. Both ``LearnableWSLinear.from_graph`` and the graph fusions
    (``topology="learnable"``) build their twins through this one rule.

    Returns:
        ``{"nodes", "k", "beta_init", "seed", "order", **options}``.

    Raises:
        ValueError: if neither the graph nor the arguments give ``k``.
    """
    if not isinstance(graph, CrossModalGraph):
        raise TypeError(f"a learnable twin needs a CrossModalGraph, got {type(graph).__name__}")
    k = graph.k if graph.k is not None else k
    if k is None:
        raise ValueError("a learnable twin needs a graph built by ws_cross_modal_graph (graph.k is None) or a k")
    beta = graph.beta if graph.beta is not None else (0.3 if beta is None else beta)
    low, high = BETA_INIT_RANGE
    twin = {"nodes": dict(graph.node_counts), "k": k, "beta_init": min(max(beta, low), high),
            "seed": graph.seed if graph.seed is not None else 0, "order": graph.order or order or "blocked"}
    twin.update(options)
    return twin


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
