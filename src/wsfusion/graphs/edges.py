r"""Edge-set utilities shared by the graphs, the sparse kernels and the topologies.

Edges are handled as integer *keys* on :math:`N` nodes:

* a directed edge :math:`s \to t` has the key :math:`t N + s`, so sorting
  keys sorts edges by target then source, the **canonical order** of
  :attr:`CrossModalGraph.edge_index <wsfusion.graphs.CrossModalGraph.edge_index>`,
  of ``WSLinear.weight`` and of the CSR rows of the sparse kernels;
* an undirected pair :math:`\{u, v\}`, :math:`u < v`, has the key
  :math:`u N + v`.

This module is public: the graph builders, the sparse kernels
(:mod:`wsfusion.nn`), the learnable topologies (:mod:`wsfusion.topology`)
and the rewiring callbacks (:mod:`wsfusion.train`) all use it, and so may
user code that edits edge sets. Import it as ``wsfusion.graphs.edges``;
every name in ``__all__`` is part of the API.

Example:
    >>> import torch
    >>> from wsfusion.graphs.edges import directed_keys, undirected_keys
    >>> edge_index = torch.tensor([[0, 1], [1, 0]])  # 0 -> 1 and 1 -> 0
    >>> directed_keys(edge_index, 3).tolist(), undirected_keys(edge_index, 3).tolist()
    ([3, 1], [1, 1])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "ENUMERATE_MAX_PAIRS",
    "both_directions",
    "canonical_edge_index",
    "decode_directed",
    "decode_undirected",
    "directed_keys",
    "is_symmetric",
    "reverse_keys",
    "sample_non_edges",
    "sort_edge_index",
    "undirected_keys",
]

#: Above this many possible pairs, non-edges are found by rejection sampling instead of enumeration.
ENUMERATE_MAX_PAIRS = 1 << 22


def directed_keys(edge_index: Tensor, num_nodes: int) -> Tensor:
    r"""Directed keys :math:`t N + s` of the edges :math:`s \to t`.

    Args:
        edge_index (LongTensor): ``[2, E]``, row 0 source, row 1 target.
        num_nodes (int): :math:`N`.

    Shapes:
        - **output:** :math:`(E,)`
    """
    return edge_index[1] * num_nodes + edge_index[0]


def reverse_keys(edge_index: Tensor, num_nodes: int) -> Tensor:
    r"""Directed keys :math:`s N + t` of the *reversed* edges :math:`t \to s` (``[E]``)."""
    return edge_index[0] * num_nodes + edge_index[1]


def undirected_keys(pairs: Tensor, num_nodes: int) -> Tensor:
    r"""Undirected keys :math:`\min(u, v) N + \max(u, v)` of ``pairs [2, P]`` (``[P]``)."""
    lo = torch.minimum(pairs[0], pairs[1])
    hi = torch.maximum(pairs[0], pairs[1])
    return lo * num_nodes + hi


def decode_undirected(keys: Tensor, num_nodes: int) -> Tensor:
    """``[2, P]`` pairs ``(u, v)``, ``u < v``, of undirected keys."""
    return torch.stack([keys // num_nodes, keys % num_nodes])


def decode_directed(keys: Tensor, num_nodes: int) -> Tensor:
    """``[2, E]`` edges (row 0 source, row 1 target) of directed keys."""
    return torch.stack([keys % num_nodes, keys // num_nodes])


def sort_edge_index(edge_index: Tensor, num_nodes: int) -> Tensor:
    """``edge_index [2, E]`` in canonical order (target then source); no validation, no deduplication."""
    return edge_index[:, directed_keys(edge_index, num_nodes).argsort()]


def is_symmetric(edge_index: Tensor, num_nodes: int) -> bool:
    r"""Whether every edge :math:`s \to t` of ``edge_index [2, E]`` (no duplicates) has its reverse :math:`t \to s`."""
    keys = directed_keys(edge_index, num_nodes)
    rev = reverse_keys(edge_index, num_nodes)
    return torch.equal(keys.sort().values, rev.sort().values)


def canonical_edge_index(edge_index: Any, num_nodes: int, *, symmetric: bool = True) -> Tensor:
    r"""Validate an edge set and return it on the CPU, sorted by target then source.

    Args:
        edge_index (LongTensor, array or nested sequence): ``[2, E]``, row 0
            source, row 1 target, any column order.
        num_nodes (int): :math:`N`; ids must lie in :math:`[0, N)`.
        symmetric (bool): also require the reverse of every edge.

    Returns:
        LongTensor ``[2, E]``: contiguous, on the CPU, in canonical order.

    Raises:
        ValueError: a shape other than ``[2, E]``, non-integer entries, an id
            out of range, a repeated edge, or (with ``symmetric``) an edge
            without its reverse.
    """
    ei = torch.as_tensor(np.asarray(edge_index) if not isinstance(edge_index, Tensor) else edge_index)
    if ei.dim() != 2 or ei.size(0) != 2:
        raise ValueError(f"edge_index must have shape [2, E], got {tuple(ei.shape)}")
    if ei.is_floating_point() or ei.dtype == torch.bool or ei.is_complex():
        raise ValueError(f"edge_index must hold integers, got {ei.dtype}")
    ei = ei.detach().to(device="cpu", dtype=torch.long)
    if ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= num_nodes):
        raise ValueError(
            f"edge_index has node ids in [{int(ei.min())}, {int(ei.max())}], outside 0..{num_nodes - 1}"
        )
    key, perm = directed_keys(ei, num_nodes).sort()
    if key.numel() > 1 and bool((key[1:] == key[:-1]).any()):
        dup = int(key[1:][key[1:] == key[:-1]][0])
        raise ValueError(f"edge_index repeats the edge {dup % num_nodes} -> {dup // num_nodes}")
    ei = ei[:, perm]
    if symmetric:
        reverse = reverse_keys(ei, num_nodes)  # key of the reversed edge
        if not torch.equal(reverse.sort().values, key):
            pos = torch.searchsorted(key, reverse)
            missing = (pos >= key.numel()) | (key[pos.clamp(max=key.numel() - 1)] != reverse)
            i = int(missing.nonzero()[0])
            raise ValueError(
                f"edge_index is not symmetric: {int(ei[0, i])} -> {int(ei[1, i])} has no reverse edge"
            )
    return ei.contiguous()


def both_directions(pairs: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
    """Directed edges of undirected pairs, canonical order, with the pair of each.

    Args:
        pairs (LongTensor): ``[2, P]`` undirected pairs, no self loops.
        num_nodes (int): :math:`N`.

    Returns:
        ``(edge_index [2, 2P], pair_id [2P])``: both directions of every pair
        sorted by target then source, and the column of ``pairs`` each
        directed edge comes from.
    """
    p = pairs.size(1)
    ei = torch.cat([pairs, pairs.flip(0)], dim=1)
    pair_id = torch.arange(p, device=pairs.device).repeat(2)
    order = directed_keys(ei, num_nodes).argsort()
    return ei[:, order].contiguous(), pair_id[order].contiguous()


def sample_non_edges(
    num_nodes: int,
    exclude: Tensor,
    count: int,
    generator: torch.Generator,
    *,
    undirected: bool,
) -> Tensor:
    """Up to ``count`` distinct keys of pairs that are neither self loops nor in ``exclude``, uniformly at random.

    ``exclude`` holds keys of the same kind (undirected ``u * N + v`` or
    directed ``t * N + s``). Fewer than ``count`` keys come back only when
    fewer non-edges exist. Small graphs enumerate every pair; large ones
    draw pairs and reject edges, self loops and repeats (never ``O(N^2)``
    memory).

    Args:
        num_nodes (int): :math:`N`.
        exclude (LongTensor): keys not to return (any shape).
        count (int): how many keys to draw.
        generator (torch.Generator): source of randomness (CPU).
        undirected (bool): undirected pair keys instead of directed ones.

    Returns:
        LongTensor ``[min(count, available)]`` of keys, in random order.
    """
    n = num_nodes
    exclude = exclude.reshape(-1).to("cpu")
    total = n * (n - 1) // 2 if undirected else n * (n - 1)
    count = max(0, min(int(count), total - int(torch.unique(exclude).numel())))
    if count == 0:
        return torch.empty(0, dtype=torch.long)
    if total <= ENUMERATE_MAX_PAIRS:
        if undirected:
            u, v = torch.triu_indices(n, n, 1)
            keys = u * n + v
        else:
            t, s = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
            keys = (t * n + s)[t != s]
        keys = keys[~torch.isin(keys, exclude)]
        return keys[torch.randperm(keys.numel(), generator=generator)[:count]]
    chosen = torch.empty(0, dtype=torch.long)
    while chosen.numel() < count:
        m = 2 * (count - chosen.numel()) + 64
        a = torch.randint(n, (m,), generator=generator)
        b = torch.randint(n, (m,), generator=generator)
        ok = a != b
        a, b = a[ok], b[ok]
        keys = torch.minimum(a, b) * n + torch.maximum(a, b) if undirected else a * n + b
        keys = keys[~torch.isin(keys, exclude) & ~torch.isin(keys, chosen)]
        keys = torch.unique(keys)
        keys = keys[torch.randperm(keys.numel(), generator=generator)]
        chosen = torch.cat([chosen, keys[: count - chosen.numel()]])
    return chosen
