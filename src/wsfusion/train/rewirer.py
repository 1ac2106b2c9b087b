r"""Dynamic sparse rewiring during training (SET / RigL): of :class:`~wsfusion.nn.WSLinear` layers' edges,
or of the graph attention layers run on (``edges="attention"``, :mod:`wsfusion.train.attention_rewiring`).

Every :math:`\Delta T` steps a fraction :math:`\alpha_t` of each watched
layer's edges with the smallest weight magnitude is dropped, and as many
new edges are grown, at random (SET, Mocanu et al. 2018) or where the dense
gradient is largest (RigL, Evci et al. 2020).  The edge count never
changes. The edge-set change itself is :func:`wsfusion.topology.rewire_`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from wsfusion._validation import check_fraction, check_int
from wsfusion.graphs.edges import (
    ENUMERATE_MAX_PAIRS,
    canonical_edge_index,
    decode_directed,
    decode_undirected,
    directed_keys,
    is_symmetric,
    sample_non_edges,
)
from wsfusion.graphs import CrossModalGraph
from wsfusion.nn import WSLinear
from wsfusion.topology import rewire_
from wsfusion.train import distributed
from wsfusion.train.attention_rewiring import rewire_attention_graph, with_edges
from wsfusion.train.callbacks import Callback
from wsfusion.train.config import REWIRE_MODES as MODES  # the regrowth rules (TrainConfig.rewire's choices)

__all__ = ["Rewirer", "MODES", "EDGES"]

#: What a :class:`Rewirer` rewires: ``WSLinear`` weights' edges, or an attention model's graph.
EDGES = ("weights", "attention")


class Rewirer(Callback):
    r"""Drop the weakest edges of ``WSLinear`` layers and regrow as many, every ``delta_t`` steps (SET / RigL).

    At a step :math:`t` with :math:`t \bmod \Delta T = 0` and
    :math:`t < T_{\text{end}}`, each watched layer drops the
    :math:`\lfloor \alpha_t E \rfloor` edges of smallest :math:`|w|`, with

    .. math::
        \alpha_t = \frac{\alpha}{2}\Big(1 + \cos\frac{\pi t}{T_{\text{end}}}\Big),

    and grows as many edges that were absent before the update:

    * ``mode="set"``: uniformly at random among non-edges;
    * ``mode="rigl"``: the non-edges with the largest dense-gradient
      magnitude :math:`|G_{ts}|`, :math:`G = \sum_b \delta_b^\top x_b`
      (output gradient :math:`\delta` and input :math:`x` of the layer, summed
      over the forward calls of the step before the update, captured by hooks).
      If :math:`N \le` ``dense_max_nodes`` the exact :math:`G` is formed
      (:math:`N^2` memory) and every non-edge is scored; otherwise a pool of
      ``pool_factor`` times as many random non-edges is drawn and scored by a
      gather-dot :math:`\langle \delta_{:,t}, x_{:,s} \rangle` (memory
      :math:`O(B \cdot \text{pool})`, never :math:`N \times N`).  Under
      ``torch.distributed`` the scores are all-reduced (the pools agree,
      being drawn from the same seeded generator).

    New edges start at zero weight (and zero optimizer moments, see
    :func:`rewire_`).  Self loops are never dropped or grown; duplicates
    cannot appear.  With ``symmetric=True`` (default) the unit is the
    undirected pair: both directions are dropped or grown together, its
    magnitude is :math:`(|w_{u\to v}| + |w_{v\to u}|)/2` and its RigL score
    :math:`|G_{vu}| + |G_{uv}|`; the layer's graph stays undirected.
    Ties in magnitude go to the lower edge index.

    Use it as a training callback (``train(config, callbacks=[Rewirer()])``):
    with ``layers=None`` it watches every ``WSLinear`` of ``trainer.model``,
    and ``end_step=None`` means :math:`0.75\times` the trainer's total steps.
    Its state (step, edges per layer, random generator) goes into the
    checkpoint.  Because the edge order is part of the weights' meaning, the
    structure must be restored before the model runs: call
    :meth:`attach` (``rewirer.attach(trainer.model)``) or :meth:`on_fit_start`
    before resuming, or pass ``layers`` explicitly. :meth:`load_state_dict`
    only rebuilds the structure and leaves the weights and optimizer state,
    which the checkpoint's model/optimizer state already hold in the saved
    edge order.

    Args:
        layers (Sequence[WSLinear] or nn.Module, optional): layers to watch,
            or a module whose ``WSLinear`` layers to watch.
        delta_t (int): steps between updates, :math:`\ge 1`.
        alpha (float): initial drop fraction in :math:`(0, 1)`.
        mode (str): ``"set"`` or ``"rigl"``.
        end_step (int, optional): :math:`T_{\text{end}}`, no updates from it on.
        end_fraction (float): :math:`T_{\text{end}}` as a fraction of the
            trainer's total steps when ``end_step`` is None.
        symmetric (bool): keep the structure undirected.
        seed (int): seed of the random choices.
        dense_max_nodes (int): largest :math:`N` for the exact dense RigL score.
        pool_factor (int): RigL candidate pool size per grown edge above it.
        optimizer (torch.optim.Optimizer, optional): whose state follows the
            edges (default: ``trainer.optimizer``).
        edges (str): ``"weights"`` (the default: the edges of ``WSLinear``
            layers, as above) or ``"attention"``: the graph of a model that
            runs attention over it (an
            :class:`~wsfusion.train.attention_rewiring.EdgeGatedModel`, e.g. the
            routing benchmark's), whose edges have no weights. Its edges are
            scored on the step's batch (``trainer.batch``) by the loss gradient
            of a gate on each edge (the first-order loss change of removing an
            edge, or of opening a non-edge for RigL) over a pool of
            ``pool_factor`` sampled non-edges per edge; the schedule
            :math:`\alpha_t` is the same. ``symmetric`` must be ``True``, and the
            rewired graph is in the state (a resumed run continues on it).
    """

    def __init__(
        self,
        layers: Sequence[WSLinear] | nn.Module | None = None,
        *,
        delta_t: int = 100,
        alpha: float = 0.3,
        mode: str = "set",
        end_step: int | None = None,
        end_fraction: float = 0.75,
        symmetric: bool = True,
        seed: int = 0,
        dense_max_nodes: int = 1024,
        pool_factor: int = 10,
        optimizer: torch.optim.Optimizer | None = None,
        edges: str = "weights",
    ) -> None:
        if edges not in EDGES:
            raise ValueError(f"edges must be one of {EDGES}, got {edges!r}")
        if edges == "attention" and not symmetric:
            raise ValueError("edges='attention' rewires undirected graphs: symmetric must be True")
        self.edges = edges
        self.model: Any = None  # the EdgeGatedModel of edges="attention"
        self.delta_t = check_int(delta_t, "delta_t", 1)
        self.alpha = check_fraction(alpha, "alpha", "(0, 1)")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.end_step = None if end_step is None else check_int(end_step, "end_step", 1)
        self.end_fraction = check_fraction(end_fraction, "end_fraction", "(0, 1]")
        self.symmetric = bool(symmetric)
        self.seed = check_int(seed, "seed", 0)
        self.dense_max_nodes = check_int(dense_max_nodes, "dense_max_nodes", 0)
        self.pool_factor = check_int(pool_factor, "pool_factor", 1)
        self.optimizer = optimizer
        self.generator = torch.Generator().manual_seed(self.seed)
        self.step = 0
        self.num_updates = 0
        self.layers: list[WSLinear] = []
        self._handles: list[Any] = []
        self._captured: dict[int, tuple[list[Tensor], list[Tensor]]] = {}
        self._pending: dict[str, Any] | None = None
        if layers is not None:
            self.attach(layers)

    # ------------------------------------------------------------------ #
    # attaching
    # ------------------------------------------------------------------ #
    def attach(self, layers: Sequence[WSLinear] | nn.Module | Iterable[WSLinear]) -> "Rewirer":
        """Watch ``layers`` (or every ``WSLinear`` inside a module); apply a state loaded before."""
        if isinstance(layers, nn.Module):
            found = [m for m in layers.modules() if isinstance(m, WSLinear)]
        else:
            found = list(layers)
        for layer in found:
            if not isinstance(layer, WSLinear):
                raise TypeError(f"Rewirer watches WSLinear layers, got {type(layer).__name__}")
        if not found:
            raise ValueError("Rewirer found no WSLinear layer to watch")
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.layers = found
        if self.symmetric:
            for i, layer in enumerate(found):
                if not is_symmetric(layer.edge_index.cpu(), layer.num_nodes):
                    raise ValueError(f"symmetric=True but watched layer {i} has a directed edge set")
        if self.mode == "rigl":
            self._handles = [layer.register_forward_hook(self._make_hook(i)) for i, layer in enumerate(found)]
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._apply_state(pending)
        return self

    def on_fit_start(self, trainer: Any) -> None:
        """Attach to ``trainer.model`` (if no layers yet) and use ``trainer.optimizer``."""
        if self.edges == "attention":
            if self.model is None:
                self.attach_graph_model(distributed.unwrap(trainer.model))
        elif not self.layers:
            self.attach(distributed.unwrap(trainer.model))
        if self.optimizer is None:
            self.optimizer = getattr(trainer, "optimizer", None)

    def attach_graph_model(self, model: nn.Module) -> "Rewirer":
        """Rewire ``model.graph`` (``edges="attention"``): ``model`` is an
        :class:`~wsfusion.train.attention_rewiring.EdgeGatedModel`."""
        if self.edges != "attention":
            raise ValueError("attach_graph_model is for edges='attention'; WSLinear layers attach with attach()")
        if not isinstance(getattr(model, "graph", None), CrossModalGraph) or not callable(getattr(model, "set_graph", None)):
            raise TypeError(f"Rewirer(edges='attention') rewires a model's graph: {type(model).__name__} needs a "
                            "CrossModalGraph attribute `graph`, a `set_graph(graph)` method and a forward taking "
                            "`edges=(edge_index, edge_weight)`")
        self.model = model
        return self

    def on_train_start(self, trainer: Any) -> None:
        """Re-apply a loaded state (``edges="attention"``): the resumed model runs on the rewired graph. Pass a
        callback that sets the model's graph (a curriculum) before this one."""
        if self._pending is not None and self.edges == "attention":
            self.on_fit_start(trainer)
            pending, self._pending = self._pending, None
            self._apply_state(pending)

    def _capturing(self) -> bool:
        nxt = self.step + 1
        return nxt % self.delta_t == 0 and (self.end_step is None or nxt < self.end_step)

    def _make_hook(self, i: int):  # noqa: ANN202
        def hook(module: WSLinear, inputs: tuple[Any, ...], output: Tensor) -> None:
            if not (module.training and torch.is_grad_enabled() and self._capturing()):
                return
            if not output.requires_grad:
                return
            x = inputs[0].detach().reshape(-1, module.num_nodes)

            def grad_hook(g: Tensor) -> None:
                # x and its output gradient are recorded together, so forward passes without a backward
                # (e.g. an evaluation with grad enabled) are ignored.
                xs, gs = self._captured.setdefault(i, ([], []))
                xs.append(x)
                gs.append(g.detach().reshape(-1, module.num_nodes))

            output.register_hook(grad_hook)

        return hook

    # ------------------------------------------------------------------ #
    # schedule
    # ------------------------------------------------------------------ #
    def fraction(self, step: int, end_step: int | None = None) -> float:
        r""":math:`\alpha_t` at ``step`` (0 from ``end_step`` on)."""
        end = self.end_step if end_step is None else end_step
        if end is None:
            raise ValueError("fraction needs end_step (given to Rewirer or here)")
        if step >= end:
            return 0.0
        return 0.5 * self.alpha * (1.0 + math.cos(math.pi * step / end))

    def on_step_end(self, trainer: Any, step: int) -> None:
        if trainer is not None:
            self.on_fit_start(trainer)
            if self.end_step is None:
                total = trainer.steps_per_epoch * trainer.config.epochs
                self.end_step = max(1, int(self.end_fraction * total))
        self.step = int(step)
        if step % self.delta_t == 0 and self.end_step is not None and step < self.end_step:
            if self.edges == "attention":
                self.rewire_graph(trainer.batch, self.fraction(step))
            else:
                self.rewire(self.fraction(step))
        if not self._capturing():
            self._captured.clear()

    # ------------------------------------------------------------------ #
    # the update
    # ------------------------------------------------------------------ #
    def rewire_graph(self, batch: tuple[Any, Any, Any, Tensor], fraction: float) -> CrossModalGraph:
        """Drop and regrow ``fraction`` of the attached model's graph edges now, scored on ``batch``
        (``edges="attention"``); returns the new graph, which the model now runs on."""
        if self.model is None:
            raise RuntimeError("Rewirer(edges='attention') has no model: call attach_graph_model(model) first")
        if batch is None:
            raise RuntimeError("Rewirer(edges='attention') scores edges on the step's batch, and none was given")
        graph = rewire_attention_graph(self.model, self.model.graph, batch, fraction, self.mode, self.generator,
                                       self.pool_factor)
        self.model.set_graph(graph)
        self.num_updates += 1
        return graph

    @torch.no_grad()
    def rewire(self, fraction: float) -> list[int]:
        """Drop and regrow ``fraction`` of every watched layer's edges now; returns the edges changed per layer
        (directed)."""
        if not self.layers:
            raise RuntimeError("Rewirer has no layers: pass layers=... or call attach(model) first")
        changed = []
        for i, layer in enumerate(self.layers):
            changed.append(self._rewire_layer(i, layer, fraction))
        self._captured.clear()
        self.num_updates += 1
        return changed

    def _rewire_layer(self, i: int, layer: WSLinear, fraction: float) -> int:
        n = layer.num_nodes
        ei = layer.edge_index.cpu()
        w = layer.weight.detach().abs().cpu()
        loops = ei[0] == ei[1]
        keys = directed_keys(ei, n)
        if self.symmetric:
            unit = (ei[0] < ei[1]).nonzero().flatten()  # one directed edge u -> v (u < v) per pair
            u, v = ei[0, unit], ei[1, unit]
            rev = torch.searchsorted(keys, u * n + v)  # index of v -> u
            magnitude = 0.5 * (w[unit] + w[rev])
            unit_keys = u * n + v  # undirected keys
        else:
            unit = (~loops).nonzero().flatten()
            magnitude = w[unit]
            unit_keys = keys[unit]
        num_drop = int(fraction * unit.numel())
        if num_drop == 0:
            return 0
        grow = self._grow(i, layer, unit_keys, num_drop)
        num = grow.numel()
        if num == 0:
            return 0
        drop = torch.sort(magnitude, stable=True).indices[:num]
        keep = torch.ones(unit.numel(), dtype=torch.bool)
        keep[drop] = False
        new_unit_keys = torch.cat([unit_keys[keep], grow])
        if self.symmetric:
            pairs = decode_undirected(new_unit_keys, n)
            parts = [pairs, pairs.flip(0)]
        else:
            parts = [decode_directed(new_unit_keys, n)]
        parts.append(ei[:, loops])
        rewire_(layer, torch.cat(parts, dim=1), self.optimizer)
        return num * (2 if self.symmetric else 1)

    def _grow(self, i: int, layer: WSLinear, unit_keys: Tensor, count: int) -> Tensor:
        n = layer.num_nodes
        undirected = self.symmetric
        if self.mode == "set":
            return sample_non_edges(n, unit_keys, count, self.generator, undirected=undirected)
        xs, gs = self._captured.get(i, ([], []))
        if not xs:
            warnings.warn(
                f"Rewirer(mode='rigl'): no input/output gradient captured for layer {i} at step {self.step}; "
                "skipping its update (was the layer attached before the step's forward pass?)",
                stacklevel=3,
            )
            return torch.empty(0, dtype=torch.long)
        x = torch.cat(xs).float()
        g = torch.cat(gs).float()
        if n <= self.dense_max_nodes and n * (n - 1) <= ENUMERATE_MAX_PAIRS:
            dense = g.t() @ x  # [N_target, N_source], only for small N
            dense = _all_reduce(dense).abs().cpu()
            if undirected:
                cand = sample_non_edges(n, unit_keys, n * n, self.generator, undirected=True)
                a, b = cand // n, cand % n
                score = dense[a, b] + dense[b, a]
            else:
                cand = sample_non_edges(n, unit_keys, n * n, self.generator, undirected=False)
                score = dense[cand // n, cand % n]
        else:
            cand = sample_non_edges(n, unit_keys, self.pool_factor * count, self.generator, undirected=undirected)
            if undirected:
                score = _pair_score(g, x, cand, n)
            else:
                score = _all_reduce(_gather_dot(g, x, cand // n, cand % n)).abs().cpu()
        count = min(count, cand.numel())
        order = torch.sort(score, descending=True, stable=True).indices[:count]
        return cand[order]

    # ------------------------------------------------------------------ #
    # state
    # ------------------------------------------------------------------ #
    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "num_updates": self.num_updates,
            "end_step": self.end_step if self.end_step is not None else -1,
            "generator": self.generator.get_state(),
            "edge_index": ([self.model.graph.edge_index.cpu().clone()] if self.edges == "attention" and self.model
                           else [layer.edge_index.detach().cpu().clone() for layer in self.layers]),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.edges == "attention":
            self._pending = state  # applied in on_train_start, once a data schedule has set the graph it rewires
            return
        if self.layers:
            self._apply_state(state)
        else:
            self._pending = state

    def _apply_state(self, state: dict[str, Any]) -> None:
        edges = state["edge_index"]
        if self.edges == "weights" and len(edges) != len(self.layers):
            raise ValueError(f"the state holds edges for {len(edges)} layers, but {len(self.layers)} are watched")
        self.step = int(state["step"])
        self.num_updates = int(state["num_updates"])
        self.end_step = None if int(state["end_step"]) < 0 else int(state["end_step"])
        self.generator.set_state(state["generator"])
        if self.edges == "attention":
            if edges:
                self.model.set_graph(with_edges(self.model.graph, edges[0]))
            return
        for layer, ei in zip(self.layers, edges):
            ei = canonical_edge_index(ei, layer.num_nodes, symmetric=False)
            if ei.size(1) == layer.weight.numel():
                layer.set_edge_index(ei)  # the weights already hold the saved order
            else:
                rewire_(layer, ei, self.optimizer)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(mode={self.mode!r}, delta_t={self.delta_t}, alpha={self.alpha}, "
            f"end_step={self.end_step}, symmetric={self.symmetric}, layers={len(self.layers)})"
        )


def _gather_dot(g: Tensor, x: Tensor, target: Tensor, source: Tensor, chunk: int = 65536) -> Tensor:
    """``<g[:, t], x[:, s]>`` for each candidate ``(s -> t)`` in chunks (memory ``B * chunk``)."""
    target, source = target.to(g.device), source.to(g.device)
    out = [(g[:, target[i : i + chunk]] * x[:, source[i : i + chunk]]).sum(0) for i in range(0, target.numel(), chunk)]
    return torch.cat(out) if out else g.new_zeros(0)


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1


def _all_reduce(t: Tensor) -> Tensor:
    if _distributed():
        torch.distributed.all_reduce(t)
    return t


def _pair_score(g: Tensor, x: Tensor, cand: Tensor, n: int) -> Tensor:
    """RigL score ``|G[v, u]| + |G[u, v]|`` of undirected pair keys (signed gradients summed across ranks first)."""
    a, b = cand // n, cand % n
    both = torch.stack([_gather_dot(g, x, a, b), _gather_dot(g, x, b, a)])
    both = _all_reduce(both)
    return (both[0].abs() + both[1].abs()).cpu()
