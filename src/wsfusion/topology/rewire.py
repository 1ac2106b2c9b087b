"""Change a :class:`~wsfusion.nn.WSLinear`'s edge set in place, its weights and optimiser state with it.

The training callback that decides *which* edges to drop and grow (SET /
RigL) is :class:`wsfusion.train.Rewirer`; this is the operation it applies.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from wsfusion.graphs.edges import canonical_edge_index, directed_keys
from wsfusion.nn import WSLinear

__all__ = ["rewire_"]


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
    layer.set_edge_index(ei)
    return source


