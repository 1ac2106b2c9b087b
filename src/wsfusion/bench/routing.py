"""Routing: does a graph carry a key and a value to a query token within a few layers? (``--suite routing``).

Every sparse topology gets the same edge budget (``N k / 2`` undirected edges over the
``N = 3 T`` tokens of :class:`~wsfusion.data.CrossModalRelay`) and the same depth; ``dense``
(all pairs, :class:`torch.nn.MultiheadAttention`) is the reference. The model is the same for
all: a token projection plus a learned modality embedding, ``layers`` pre-norm blocks of
attention (:class:`~wsfusion.nn.CrossModalAttentionConv` on the graph, or dense) and a
feed-forward, and a linear classifier on the **query token's** final state only, so the codes
must travel along the graph's edges to it.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wsfusion.bench._measure import peak_memory_mb
from wsfusion.data import CrossModalRelay
from wsfusion.graphs import CrossModalGraph, ring_lattice, token_graph
from wsfusion.graphs._edges import decode_undirected, sample_non_edges, undirected_keys
from wsfusion.graphs.builders import interleaved_ring_order
from wsfusion.graphs.metrics import path_lengths
from wsfusion.nn import CrossModalAttentionConv

#: Sparse topologies (same edge budget) and the dense reference.
TOPOLOGIES = ("lattice", "ws-0.05", "ws-0.1", "ws-0.3", "ws-0.3-blocked", "random", "bigbird", "dense")
#: Path statistics are exact up to this many nodes, estimated from this many BFS sources beyond.
EXACT_PATHS_MAX_NODES, PATH_SOURCES = 4096, 512


def build_topology(name: str, tokens: int, k: int, seed: int) -> CrossModalGraph | None:
    """The graph of a topology over ``3 * tokens`` tokens (``None`` for ``dense``), ``N k / 2`` edges each.

    ``lattice`` is the interleaved ring lattice (beta = 0), ``ws-<beta>`` Watts-Strogatz on the
    interleaved ring (``-blocked``: modality blocks on the ring), ``random`` beta = 1, and
    ``bigbird`` one global token (the middle ``text`` token, joined to every node), a ring
    window of ``k/2`` on the interleaved ring, and random pairs for the rest of the budget.
    """
    counts = {m: tokens for m in CrossModalRelay.modalities}
    if name == "dense":
        return None
    if name == "lattice":
        return token_graph(counts, k=k, beta=0.0, seed=seed)
    if name == "random":
        return token_graph(counts, k=k, beta=1.0, seed=seed)
    if name.startswith("ws-"):
        beta, _, order = name[3:].partition("-")
        return token_graph(counts, k=k, beta=float(beta), seed=seed, order=order or "interleaved")
    if name == "bigbird":
        return _bigbird(counts, k, seed)
    raise ValueError(f"topology must be one of {list(TOPOLOGIES)}, got {name!r}")


def _bigbird(counts: dict[str, int], k: int, seed: int) -> CrossModalGraph:
    n = sum(counts.values())
    budget = n * k // 2
    hub = counts["visual"] + counts["text"] // 2  # the middle text token (node ids are blocked)
    window = max(2, (k // 2) // 2 * 2)
    lattice = ring_lattice(n, window, ring_order=interleaved_ring_order(list(counts.values())))
    keys = torch.unique(torch.cat([undirected_keys(lattice, n),
                                   undirected_keys(torch.stack([torch.full((n,), hub), torch.arange(n)]), n)]))
    keys = keys[keys // n != keys % n]  # no self loop at the hub
    generator = torch.Generator().manual_seed(seed)
    extra = sample_non_edges(n, keys, max(0, budget - keys.numel()), generator, undirected=True)
    pairs = decode_undirected(torch.cat([keys, extra]), n)
    return CrossModalGraph.from_edge_index(torch.cat([pairs, pairs.flip(0)], dim=1), counts, k=k, seed=seed,
                                           order="interleaved")


def path_statistics(graph: CrossModalGraph | None, seed: int = 0) -> dict[str, Any]:
    """Average shortest path length and diameter (exact up to 4,096 nodes, else from 512 BFS sources)."""
    if graph is None:
        return {"avg_path_length": 1.0, "diameter": 1, "paths_exact": True}
    n = graph.num_nodes
    exact = n <= EXACT_PATHS_MAX_NODES
    sources = None if exact else np.random.default_rng(seed).choice(n, PATH_SOURCES, replace=False)
    return {**path_lengths(graph, sources), "paths_exact": exact}


class RoutingModel(nn.Module):
    """Token projection, ``layers`` pre-norm attention + feed-forward blocks, a classifier at the query token."""

    def __init__(self, in_dim: int, width: int, heads: int, layers: int, num_classes: int,
                 graph: CrossModalGraph | None) -> None:
        super().__init__()
        self.project = nn.Linear(in_dim, width)
        self.modality = nn.Embedding(len(CrossModalRelay.modalities), width)
        self.graph = graph
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(2 * layers))
        if graph is None:
            self.attention = nn.ModuleList(nn.MultiheadAttention(width, heads, batch_first=True) for _ in range(layers))
        else:
            self.attention = nn.ModuleList(CrossModalAttentionConv(width, width, heads=heads) for _ in range(layers))
        self.ffn = nn.ModuleList(nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))
                                 for _ in range(layers))
        self.classify = nn.Linear(width, num_classes)

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        x = torch.cat([inputs[m] for m in CrossModalRelay.modalities], dim=1)  # blocked node ids
        tokens = inputs[CrossModalRelay.modalities[0]].shape[1]
        modality = torch.arange(len(CrossModalRelay.modalities), device=x.device).repeat_interleave(tokens)
        h = self.project(x) + self.modality(modality)
        edge_index = None if self.graph is None else self.graph.edge_tensors(x.device)[0]
        for i, (attention, ffn) in enumerate(zip(self.attention, self.ffn)):
            z = self.norms[2 * i](h)
            h = h + (attention(z, z, z, need_weights=False)[0] if edge_index is None else attention(z, edge_index))
            h = h + ffn(self.norms[2 * i + 1](h))
        query_modality, position = CrossModalRelay.query
        return self.classify(h[:, CrossModalRelay.modalities.index(query_modality) * tokens + position])


def _batches(data: CrossModalRelay, batch_size: int, generator: torch.Generator | None):
    order = torch.randperm(len(data), generator=generator) if generator is not None else torch.arange(len(data))
    for start in range(0, len(data), batch_size):
        items = [data[int(i)] for i in order[start:start + batch_size]]
        yield ({m: torch.stack([x[m] for x, _ in items]) for m in data.modalities},
               torch.stack([y for _, y in items]))


def run_one(topology: str, tokens: int, seed: int, *, k: int = 8, layers: int = 4, width: int = 64, heads: int = 4,
            epochs: int = 10, train_samples: int = 4000, test_samples: int = 1000, num_classes: int = 4,
            label: str = "sum", placement: str = "random", lr: float = 1e-3, batch_size: int = 32,
            device: str | torch.device = "cpu") -> dict[str, Any]:
    """Train one model on :class:`CrossModalRelay` and report accuracy, graph statistics and cost."""
    device = torch.device(device)
    torch.manual_seed(seed)
    data = {split: CrossModalRelay(split, tokens=tokens, num_samples=n, num_classes=num_classes, label=label,
                                   placement=placement, seed=seed)
            for split, n in (("train", train_samples), ("test", test_samples))}
    graph = build_topology(topology, tokens, k, seed)
    model = RoutingModel(data["train"].feature_dim, width, heads, layers, num_classes, graph).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    step_ms: list[float] = []

    def step(inputs: dict[str, Tensor], labels: Tensor) -> None:
        loss = F.cross_entropy(model(inputs), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(epochs):
        model.train()
        for inputs, labels in _batches(data["train"], batch_size, generator):
            inputs, labels = {m: x.to(device) for m, x in inputs.items()}, labels.to(device)
            start = time.perf_counter()
            step(inputs, labels)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            step_ms.append((time.perf_counter() - start) * 1e3)
    model.eval()
    correct = 0
    with torch.no_grad():
        for inputs, labels in _batches(data["test"], 256, None):
            correct += int((model({m: x.to(device) for m, x in inputs.items()}).argmax(-1).cpu() == labels).sum())
    sample, labels = next(_batches(data["train"], batch_size, None))
    sample, labels = {m: x.to(device) for m, x in sample.items()}, labels.to(device)
    peak = peak_memory_mb({"step": lambda: step(sample, labels)}, device)["step"]
    return {
        "topology": topology, "tokens": tokens, "nodes": 3 * tokens, "seed": seed,
        "edges": None if graph is None else graph.num_edges, "k": k, "layers": layers,
        "test_acc": correct / len(data["test"]),
        **path_statistics(graph, seed),
        "ms_per_step": statistics.median(step_ms) if step_ms else math.nan,
        "peak_mb": peak,
        "label": label, "placement": placement, "epochs": epochs,
    }


DEFAULT_TOKENS = (64, 256, 1024, 4096)
QUICK = dict(tokens=(16,), topologies=("lattice", "ws-0.3", "bigbird", "dense"), seeds=(0,), epochs=1,
             train_samples=128, test_samples=64, layers=2)


def run(tokens: tuple[int, ...] = DEFAULT_TOKENS, topologies: tuple[str, ...] = TOPOLOGIES,
        seeds: tuple[int, ...] = (0, 1, 2, 3, 4), device: str | torch.device = "cpu", **options: Any) -> list[dict[str, Any]]:
    """One row per (topology, tokens, seed); options go to :func:`run_one`."""
    unknown = [t for t in topologies if t not in TOPOLOGIES]
    if unknown:
        raise ValueError(f"unknown topologies {unknown}; expected some of {list(TOPOLOGIES)}")
    return [run_one(t, n, s, device=device, **options) for n in tokens for t in topologies for s in seeds]


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean test accuracy with a 95% t-interval per (tokens, topology), with the graph and cost columns."""
    from scipy import stats

    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["tokens"], row["topology"]), []).append(row)
    out = []
    for (tokens, topology), group in groups.items():
        accs = [r["test_acc"] for r in group]
        half = (stats.t.ppf(0.975, len(accs) - 1) * statistics.stdev(accs) / math.sqrt(len(accs))
                if len(accs) > 1 else None)
        out.append({"tokens": tokens, "topology": topology, "seeds": len(accs), "test_acc": statistics.mean(accs),
                    "test_acc_ci95": half, "edges": group[0]["edges"], "avg_path_length": group[0]["avg_path_length"],
                    "diameter": group[0]["diameter"], "ms_per_step": statistics.median(r["ms_per_step"] for r in group),
                    "peak_mb": group[0]["peak_mb"]})
    return out
