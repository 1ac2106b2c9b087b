"""Edge-set helpers shared by the learnable topology and the rewirer.

Edges are handled as integer *keys*: a directed edge ``s -> t`` is
``t * N + s`` (so sorting keys sorts by target then source, the order of
``WSLinear.weight``); an undirected pair ``{u, v}`` with ``u < v`` is
``u * N + v``.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: Above this many possible pairs, non-edges are found by rejection sampling instead of enumeration.
ENUMERATE_MAX_PAIRS = 1 << 22


def directed_keys(edge_index: Tensor, num_nodes: int) -> Tensor:
    """``[E]`` keys ``target * N + source``."""
    return edge_index[1] * num_nodes + edge_index[0]


def undirected_keys(pairs: Tensor, num_nodes: int) -> Tensor:
    """``[P]`` keys ``min * N + max`` of ``pairs [2, P]``."""
    lo = torch.minimum(pairs[0], pairs[1])
    hi = torch.maximum(pairs[0], pairs[1])
    return lo * num_nodes + hi


def decode_undirected(keys: Tensor, num_nodes: int) -> Tensor:
    """``[2, P]`` pairs ``(u, v)``, ``u < v``, of undirected keys."""
    return torch.stack([keys // num_nodes, keys % num_nodes])


def decode_directed(keys: Tensor, num_nodes: int) -> Tensor:
    """``[2, E]`` edges (row 0 source, row 1 target) of directed keys."""
    return torch.stack([keys % num_nodes, keys // num_nodes])


def both_directions(pairs: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
    """Directed ``edge_index [2, 2P]`` of undirected ``pairs [2, P]`` (no self loops), sorted by target then
    source, and ``pair_id [2P]``: the column of ``pairs`` each directed edge comes from."""
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
