r"""Dynamic sparse rewiring of :class:`~wsfusion.nn.WSLinear` layers during training (SET / RigL).

Every :math:`\Delta T` steps a fraction :math:`\alpha_t` of each watched
layer's edges with the smallest weight magnitude is dropped, and as many
new edges are grown, at random (SET, Mocanu et al. 2018) or where the dense
gradient is largest (RigL, Evci et al. 2020).  The edge count never
changes.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from wsfusion.graphs import CrossModalGraph
from wsfusion.graphs._edges import (
    ENUMERATE_MAX_PAIRS,
    canonical_edge_index,
    decode_directed,
    decode_undirected,
    directed_keys,
    is_symmetric,
    sample_non_edges,
)
from wsfusion.nn import WSLinear
from wsfusion.nn._sparse import csr_structure
from wsfusion.train.trainer import Callback

__all__ = ["rewire_", "Rewirer", "MODES"]

#: Regrowth rules understood by :class:`Rewirer`.
MODES = ("set", "rigl")


def _set_structure(layer: WSLinear, ei: Tensor) -> None:
    """Rebuild ``layer.graph`` and the ``edge_index`` / CSR buffers for a canonical (sorted) ``ei``."""
    n = layer.num_nodes
    old = layer.graph
    meta = dict(order=old.order, ring_order=old.ring_order, seed=old.seed)
    if is_symmetric(ei, n):
        graph = CrossModalGraph.from_edge_index(ei, dict(old.node_counts), **meta)
    else:
        # A directed edge set (Rewirer(symmetric=False)): CrossModalGraph does not check symmetry when told the
        # edges are already canonical; its undirected exports (networkx, stats) then see the union of directions.
        graph = CrossModalGraph(ei, dict(old.node_counts), _validated=True, **meta)
    device = layer.edge_index.device
    layer.graph = graph
    layer.edge_index = ei.to(device)
    for name, value in csr_structure(ei, n)._asdict().items():
        if isinstance(value, Tensor):
            setattr(layer, f"_{name}", value.to(device))


def _remap(old: Tensor, source: Tensor, kept: Tensor, size: int) -> Tensor:
    new = old.new_zeros((size,) + tuple(old.shape[1:]))
    new[kept] = old[source[kept]]
    return new


@torch.no_grad()
def rewire_(
    layer: WSLinear,
    edge_index: Tensor,
    optimizer: torch.optim.Optimizer | None = None,
) -> Tensor:
    r"""Change a :class:`~wsfusion.nn.WSLinear`'s edge set in place.

    Rebuilds ``layer.graph``, the ``edge_index`` and CSR buffers, and the
    weight: edges present before keep their weight, new edges start at zero.

    **Optimizer state.** When the edge count is unchanged (always the case
    for :class:`Rewirer`), ``layer.weight`` stays the *same* Parameter
    object: its ``.data`` (and ``.grad``) are permuted in place into the new
    edge order, so the optimizer keeps referencing it.  Every per-parameter
    optimizer state tensor shaped like the weight (Adam/AdamW ``exp_avg``,
    ``exp_avg_sq``, SGD ``momentum_buffer``, ...) is reordered the same way,
    with zeros for new edges (a new edge starts with no momentum and no
    second moment); scalar state (Adam's ``step``) is kept.  When the count
    changes, a new Parameter replaces the old one in ``optimizer``'s param
    groups and its state moves with it.  Without ``optimizer`` only the
    layer changes (stale moments would then be misaligned: pass it).

    Args:
        layer (WSLinear): the layer to rewire.
        edge_index (LongTensor ``[2, E']``): the new directed edges (row 0
            source, row 1 target), any column order, no duplicates. A symmetric
            set gives a normal ``CrossModalGraph``; an asymmetric one a directed
            edge set stored in it.
        optimizer (torch.optim.Optimizer, optional): whose state to remap.

    Returns:
        LongTensor ``[E']``: for each new edge (in the new ``edge_index``
        order) the index of the same edge before, or ``-1`` for a new edge.
    """
    if not isinstance(layer, WSLinear):
        raise TypeError(f"rewire_ needs a WSLinear layer, got {type(layer).__name__}")
    n = layer.num_nodes
    ei = canonical_edge_index(edge_index, n, symmetric=False)
    old_keys = directed_keys(layer.edge_index.cpu(), n)
    new_keys = directed_keys(ei, n)
    pos = torch.searchsorted(old_keys, new_keys).clamp(max=max(old_keys.numel() - 1, 0))
    kept = (old_keys[pos] == new_keys) if old_keys.numel() else torch.zeros_like(new_keys, dtype=torch.bool)
    source = torch.where(kept, pos, torch.full_like(pos, -1))
    dev = layer.weight.device
    pos_d, kept_d = pos.to(dev), kept.to(dev)
    size = ei.size(1)

    param = layer.weight
    state = optimizer.state.get(param, {}) if optimizer is not None else {}
    if size == param.numel():
        param.data.copy_(_remap(param.data, pos_d, kept_d, size))
        if param.grad is not None:
            param.grad.copy_(_remap(param.grad, pos_d, kept_d, size))
        for key, value in state.items():
            if isinstance(value, Tensor) and value.shape == param.shape:
                value.copy_(_remap(value, pos_d, kept_d, size))
    else:
        new_param = nn.Parameter(_remap(param.data, pos_d, kept_d, size), requires_grad=param.requires_grad)
        if param.grad is not None:
            new_param.grad = _remap(param.grad, pos_d, kept_d, size)
        if optimizer is not None:
            for group in optimizer.param_groups:
                group["params"] = [new_param if p is param else p for p in group["params"]]
            if param in optimizer.state:
                old_state = optimizer.state.pop(param)
                optimizer.state[new_param] = {
                    key: _remap(v, pos_d, kept_d, size) if isinstance(v, Tensor) and v.shape == param.shape else v
                    for key, v in old_state.items()
                }
        layer.weight = new_param
    _set_structure(layer, ei)
    return source


def _check_fraction(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 < float(value) < 1.0:
        raise ValueError(f"{name} must be a number in the open interval (0, 1), got {value!r}")
    return float(value)


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


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
    ) -> None:
        self.delta_t = _check_int(delta_t, "delta_t", 1)
        self.alpha = _check_fraction(alpha, "alpha")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.end_step = None if end_step is None else _check_int(end_step, "end_step", 1)
        if isinstance(end_fraction, bool) or not isinstance(end_fraction, numbers.Real) or not 0.0 < end_fraction <= 1.0:
            raise ValueError(f"end_fraction must be a number in (0, 1], got {end_fraction!r}")
        self.end_fraction = float(end_fraction)
        self.symmetric = bool(symmetric)
        self.seed = _check_int(seed, "seed", 0)
        self.dense_max_nodes = _check_int(dense_max_nodes, "dense_max_nodes", 0)
        self.pool_factor = _check_int(pool_factor, "pool_factor", 1)
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
        if not self.layers:
            self.attach(_unwrap(trainer.model))
        if self.optimizer is None:
            self.optimizer = getattr(trainer, "optimizer", None)

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
            self.rewire(self.fraction(step))
        if not self._capturing():
            self._captured.clear()

    # ------------------------------------------------------------------ #
    # the update
    # ------------------------------------------------------------------ #
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
            "edge_index": [layer.edge_index.detach().cpu().clone() for layer in self.layers],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.layers:
            self._apply_state(state)
        else:
            self._pending = state

    def _apply_state(self, state: dict[str, Any]) -> None:
        edges = state["edge_index"]
        if len(edges) != len(self.layers):
            raise ValueError(f"the state holds edges for {len(edges)} layers, but {len(self.layers)} are watched")
        self.step = int(state["step"])
        self.num_updates = int(state["num_updates"])
        self.end_step = None if int(state["end_step"]) < 0 else int(state["end_step"])
        self.generator.set_state(state["generator"])
        for layer, ei in zip(self.layers, edges):
            ei = canonical_edge_index(ei, layer.num_nodes, symmetric=False)
            if ei.size(1) == layer.weight.numel():
                _set_structure(layer, ei)  # the weights already hold the saved order
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


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)
