"""Argument checks of the graph builders (private; ``wsfusion.topology`` reuses them).

Every check raises ``ValueError`` with the reason, and returns the value
normalised (plain ``int`` / ``float`` / ``str``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence, Set
from typing import Any

import torch
from torch import Tensor

from wsfusion._validation import check_fraction, check_modality_mapping, is_int

#: Ring layouts understood by :func:`~wsfusion.graphs.ws_cross_modal_graph`.
ORDERS = ("blocked", "interleaved")


def check_nodes(nodes: Any) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Validate ``nodes`` and return (names, counts) in the mapping's order.

    A modality may have 0 nodes (it then owns no node and no edge); the
    total must be at least 1.
    """

    def count(name: str, value: object) -> int:
        if not is_int(value):
            raise ValueError(
                f"modality {name!r} must have an integer node count, got {value!r} ({type(value).__name__})"
            )
        if value < 0:  # type: ignore[operator]
            raise ValueError(f"modality {name!r} has {int(value)} nodes; node counts must be >= 0")  # type: ignore[arg-type]
        return int(value)  # type: ignore[arg-type]

    counts = check_modality_mapping(nodes, "nodes must be a non-empty mapping modality -> node count", count)
    if sum(counts.values()) == 0:
        raise ValueError(f"nodes {counts} has no node at all; the graph needs at least 1")
    return tuple(counts), tuple(counts.values())


def check_vocabulary(vocabulary: Any, names: tuple[str, ...]) -> tuple[str, ...]:
    """The relation vocabulary: ``names`` when ``None``, else a tuple of distinct names containing every one of ``names``."""
    if vocabulary is None:
        return names
    if isinstance(vocabulary, (str, bytes)) or not isinstance(vocabulary, (Sequence, Set)) or isinstance(
        vocabulary, Mapping
    ):
        raise ValueError(
            f"vocabulary must be a sequence of modality names such as ('visual', 'text', 'audio'), got {vocabulary!r}"
        )
    if isinstance(vocabulary, Set):
        raise ValueError(f"vocabulary must be ordered (a tuple or list), got a {type(vocabulary).__name__}")
    vocab = tuple(vocabulary)
    for name in vocab:
        if not isinstance(name, str) or not name:
            raise ValueError(f"vocabulary entries must be non-empty strings, got {name!r} in {vocab}")
    if len(set(vocab)) != len(vocab):
        dup = next(name for name in vocab if vocab.count(name) > 1)
        raise ValueError(f"vocabulary repeats the modality {dup!r}: {vocab}")
    for name in names:
        if name not in vocab:
            raise ValueError(f"modality {name!r} is not in the vocabulary {vocab}")
    return vocab


def check_k(k: Any, num_nodes: int) -> int:
    """An even integer ring degree with ``2 <= k < num_nodes``."""
    if not is_int(k):
        raise ValueError(f"k must be an integer, got {k!r} ({type(k).__name__})")
    k = int(k)
    if k < 2:
        raise ValueError(f"k must be at least 2 (each node joins its k nearest ring neighbours), got {k}")
    if k % 2:
        raise ValueError(
            f"k must be even (got {k}): networkx.watts_strogatz_graph would silently use k={k - 1}"
        )
    if k >= num_nodes:
        raise ValueError(f"k={k} must be smaller than the number of nodes N={num_nodes}")
    return k


def check_beta(beta: Any) -> float:
    """A finite rewiring probability in [0, 1]."""
    return check_fraction(beta, "beta", "[0, 1]")


def check_seed(seed: Any) -> int:
    """A non-negative integer seed; ``None`` draws (and returns) a fresh one."""
    if seed is None:
        # A fresh graph, but with its seed recorded so it can be rebuilt.
        return random.SystemRandom().randrange(2**32)
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    return int(seed)


def check_order(order: Any) -> str:
    """One of :data:`ORDERS`."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    return order


def check_ring_order(ring_order: Any, num_nodes: int) -> Tensor:
    """A fresh LongTensor ``[N]`` holding a permutation of ``0 .. N-1``."""
    ring = torch.as_tensor(ring_order, dtype=torch.long).flatten().clone()
    if ring.numel() != num_nodes or not torch.equal(ring.sort().values, torch.arange(num_nodes)):
        raise ValueError(f"ring_order must be a permutation of 0..{num_nodes - 1}")
    return ring
