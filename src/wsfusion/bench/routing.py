r"""Routing: does a graph carry a key and a value to a query token within a few layers? (``--suite routing``).

Every sparse topology gets the same edge budget (``N k / 2`` undirected edges over the
``N = 3 T`` tokens of :class:`~wsfusion.data.CrossModalRelay`, in expectation for the learned
ones) and the same depth; ``dense`` (all pairs, :class:`torch.nn.MultiheadAttention`) is the
reference. The model is the same for all: a token projection plus a learned modality
embedding, ``layers`` pre-norm blocks of attention (:class:`~wsfusion.nn.CrossModalAttentionConv`
on the graph, or dense) and a feed-forward, and a linear classifier on the **query token's**
final state only, so the codes must travel along the graph's edges to it.

Training protocol (the same for every topology; measured in ``docs/topology.md``):

* **the pair label:** the model is trained to name both codes (``label="pair"``, :math:`C^2`
  classes) and scored on their sum, :math:`(a + b) \bmod C`, through
  :meth:`~wsfusion.data.CrossModalRelay.pair_to_sum`. Trained on the sum directly, even dense
  attention stays at chance (the sum gives no gradient towards either code alone); scored as
  a sum, a prediction is right beyond chance only when both codes reached the query token.
* **a curriculum over the length:** :data:`DEFAULT_CURRICULUM` stages on short sequences
  first (a multi-hop relay is learned where a few hops suffice, then carries over: no weight
  depends on ``T``), then ``epochs`` at the target length. Without it, no sparse topology
  learns even the one-code relay at ``T = 64`` while dense does.
* **fresh samples every epoch** (``train_samples`` each), so no topology can memorise noise.
"""

from __future__ import annotations

import copy
import fcntl
import inspect
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wsfusion._io import atomic_write
from wsfusion.bench._measure import interleaved_medians, peak_memory_mb
from wsfusion.data import CrossModalRelay
from wsfusion.data.relay import RELAY_LABELS
from wsfusion import graphs
from wsfusion.graphs import CrossModalGraph
from wsfusion.graphs._edges import both_directions, decode_undirected, sample_non_edges, undirected_keys
from wsfusion.graphs.metrics import hop_distances, path_lengths
from wsfusion.nn import CrossModalAttentionConv
from wsfusion.topology import LearnableWSGraph

#: Sparse topologies (same edge budget) and the dense reference.
TOPOLOGIES = ("lattice", "ws-0.05", "ws-0.1", "ws-0.3", "ws-0.3-blocked", "random", "bigbird", "dense")
#: Learned beta (``learned-<beta_init>``): a :class:`~wsfusion.topology.LearnableWSGraph` on the interleaved
#: ring whose gates scale the attention (``edge_weight``); not run by default.
LEARNED = ("learned-0.01", "learned-0.5")
#: Dynamic sparse wiring from the lattice, at the same edge budget (see :func:`rewire_attention`); not run by default.
REWIRED = ("set", "rigl")
#: ``(tokens, epochs)`` stages trained before the target length (those shorter than it).
DEFAULT_CURRICULUM = ((8, 20), (16, 4), (32, 4))
#: Path statistics are exact up to this many nodes, estimated from this many BFS sources beyond.
EXACT_PATHS_MAX_NODES, PATH_SOURCES = 4096, 512


def build_topology(name: str, tokens: int, k: int, seed: int) -> CrossModalGraph | LearnableWSGraph | None:
    """The graph of a topology over ``3 * tokens`` tokens (``None`` for ``dense``), ``N k / 2`` edges each.

    ``lattice`` is the interleaved ring lattice (beta = 0), ``ws-<beta>`` Watts-Strogatz on the
    interleaved ring (``-blocked``: modality blocks on the ring), ``random`` beta = 1, and
    ``bigbird`` one global token (the middle ``text`` token, joined to every node), a ring
    window of ``k/2`` on the interleaved ring, and random pairs for the rest of the budget.
    ``learned-<beta>`` is a :class:`~wsfusion.topology.LearnableWSGraph` starting at that beta
    (``N k / 2`` edges in expectation); ``set`` and ``rigl`` start from the lattice and are
    rewired during training (:func:`rewire_attention`).
    """
    if not _known(name):
        raise ValueError(f"topology must be one of {_EXPECTED}, got {name!r}")
    counts = {m: tokens for m in CrossModalRelay.modalities}
    if name == "dense":
        return None
    if name.startswith("learned-"):
        return LearnableWSGraph(counts, k, float(name[len("learned-"):]), seed=seed, order="interleaved")
    if name in ("lattice", *REWIRED):
        return graphs.build("lattice", counts, k, seed=seed)
    if name == "random":
        return graphs.build("random", counts, k, seed=seed)
    if name.startswith("ws-"):
        beta, _, order = name[3:].partition("-")
        return graphs.build("ws", counts, k, beta=float(beta), seed=seed, order=order or "interleaved")
    return graphs.build("bigbird", counts, k, seed=seed)


def _known(name: str) -> bool:
    if name in TOPOLOGIES or name in REWIRED:
        return True
    for prefix, low in (("learned-", 0.0), ("ws-", -1e-12)):
        if name.startswith(prefix):
            beta, _, order = name[len(prefix):].partition("-")
            try:
                return low < float(beta) < 1.0 and order in ("", "blocked") and (prefix == "ws-" or not order)
            except ValueError:
                return False
    return False


#: What the topology errors list.
_EXPECTED = f"{list(TOPOLOGIES) + list(REWIRED)}, ws-<beta>[-blocked] or learned-<beta in (0, 1)>"


def path_statistics(graph: CrossModalGraph | None, seed: int = 0) -> dict[str, Any]:
    """Average shortest path length and diameter (exact up to 4,096 nodes, else from 512 BFS sources)."""
    if graph is None:
        return {"avg_path_length": 1.0, "diameter": 1, "paths_exact": True}
    n = graph.num_nodes
    exact = n <= EXACT_PATHS_MAX_NODES
    sources = None if exact else np.random.default_rng(seed).choice(n, PATH_SOURCES, replace=False)
    return {**path_lengths(graph, sources), "paths_exact": exact}


def query_reach(graph: CrossModalGraph | None, tokens: int, layers: int, num_classes: int,
                label: str = "sum") -> dict[str, float]:
    """What ``layers`` rounds of message passing on ``graph`` can deliver to the query token.

    ``key_reach`` / ``value_reach``: the fraction :math:`r_k` / :math:`r_v` of key (``visual``) /
    value (``text``) positions within ``layers`` hops of the query token; ``reach_bound``: the
    accuracy on ``label`` of a perfect relay on this graph under uniform random placement, which
    knows the codes that arrive and guesses the rest: ``"sum"`` :math:`r_k r_v + (1 - r_k r_v)/C`
    (one code alone leaves the sum at chance), ``"key"`` :math:`r_k + (1 - r_k)/C`, ``"pair"``
    :math:`(r_k + (1 - r_k)/C)(r_v + (1 - r_v)/C)`.
    """
    if label not in RELAY_LABELS:
        raise ValueError(f"label must be one of {list(RELAY_LABELS)}, got {label!r}")
    if graph is None:
        key = value = 1.0
    else:
        modalities = CrossModalRelay.modalities
        query_modality, position = CrossModalRelay.query
        hops = hop_distances(graph, modalities.index(query_modality) * tokens + position)
        key, value = ((hops[i * tokens:(i + 1) * tokens] <= layers).mean().item() for i in (0, 1))
    c = num_classes
    bound = {"sum": key * value + (1 - key * value) / c, "key": key + (1 - key) / c,
             "pair": (key + (1 - key) / c) * (value + (1 - value) / c)}[label]
    return {"key_reach": key, "value_reach": value, "reach_bound": bound}


def evaluation_sample(graph: LearnableWSGraph) -> CrossModalGraph:
    """The graph a learned topology is scored on: one hard sample at its current beta, drawn on the CPU from
    ``graph.seed`` (the same graph on every device), not the mode (which is the lattice for beta < 1/2)."""
    cpu = copy.deepcopy(graph).cpu()
    return cpu.to_graph("sample", torch.Generator().manual_seed(graph.seed))


class RoutingModel(nn.Module):
    """Token projection, ``layers`` pre-norm attention + feed-forward blocks, a classifier at the query token.

    ``graph`` is ``None`` (dense attention), a :class:`~wsfusion.graphs.CrossModalGraph`, or a
    :class:`~wsfusion.topology.LearnableWSGraph` whose gates (a sample in training, the fixed
    :attr:`eval_graph` sample in evaluation) weight the attention over its candidate edges.
    :meth:`set_graph` swaps the graph (a curriculum over lengths): no weight depends on it.
    """

    def __init__(self, in_dim: int, width: int, heads: int, layers: int, num_classes: int,
                 graph: CrossModalGraph | LearnableWSGraph | None) -> None:
        super().__init__()
        self.project = nn.Linear(in_dim, width)
        self.modality = nn.Embedding(len(CrossModalRelay.modalities), width)
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(2 * layers))
        if graph is None:
            self.attention = nn.ModuleList(nn.MultiheadAttention(width, heads, batch_first=True) for _ in range(layers))
        else:
            self.attention = nn.ModuleList(CrossModalAttentionConv(width, width, heads=heads) for _ in range(layers))
        self.ffn = nn.ModuleList(nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))
                                 for _ in range(layers))
        self.classify = nn.Linear(width, num_classes)
        self.graph: CrossModalGraph | LearnableWSGraph | None = None
        self.eval_graph: CrossModalGraph | None = None
        self.set_graph(graph)

    def set_graph(self, graph: CrossModalGraph | LearnableWSGraph | None) -> None:
        """Use ``graph`` from now on (a learnable one keeps the current ``beta_logit`` parameter, if any)."""
        if (graph is None) != isinstance(self.attention[0], nn.MultiheadAttention):
            raise ValueError("a dense model takes no graph, and a sparse one needs one")
        if isinstance(graph, LearnableWSGraph) and isinstance(self.graph, LearnableWSGraph):
            graph.beta_logit = self.graph.beta_logit  # one beta across lengths
        self.graph, self.eval_graph = graph, None

    def _edges(self, device: torch.device) -> tuple[Tensor, Tensor | None]:
        graph = self.graph
        if isinstance(graph, LearnableWSGraph):
            if self.training:
                return graph.edge_index, graph()
            if self.eval_graph is None:
                self.eval_graph = evaluation_sample(graph)
            graph = self.eval_graph
        return graph.edge_tensors(device)[0], None

    def train(self, mode: bool = True) -> "RoutingModel":
        self.eval_graph = None  # the learned beta moves in training: draw the evaluation graph again
        return super().train(mode)

    def forward(self, inputs: dict[str, Tensor], edges: tuple[Tensor, Tensor | None] | None = None) -> Tensor:
        """Logits at the query token; ``edges`` (``edge_index``, ``edge_weight``) overrides the graph's."""
        x = torch.cat([inputs[m] for m in CrossModalRelay.modalities], dim=1)  # blocked node ids
        tokens = inputs[CrossModalRelay.modalities[0]].shape[1]
        modality = torch.arange(len(CrossModalRelay.modalities), device=x.device).repeat_interleave(tokens)
        h = self.project(x) + self.modality(modality)
        if edges is not None:
            if self.graph is None:
                raise ValueError("edges= needs a sparse model; a dense one (graph=None) attends over all tokens")
            edge_index, edge_weight = edges
        else:
            edge_index, edge_weight = (None, None) if self.graph is None else self._edges(x.device)
        for i, (attention, ffn) in enumerate(zip(self.attention, self.ffn)):
            z = self.norms[2 * i](h)
            if edge_index is None:
                h = h + attention(z, z, z, need_weights=False)[0]
            else:
                h = h + attention(z, edge_index, edge_weight=edge_weight)
            h = h + ffn(self.norms[2 * i + 1](h))
        query_modality, position = CrossModalRelay.query
        return self.classify(h[:, CrossModalRelay.modalities.index(query_modality) * tokens + position])


@torch.enable_grad()
def rewire_attention(model: RoutingModel, graph: CrossModalGraph, inputs: dict[str, Tensor], labels: Tensor,
                     fraction: float, mode: str, generator: torch.Generator, pool: int = 4) -> CrossModalGraph:
    r"""SET / RigL for an attention graph: drop the ``fraction`` of edges the loss needs least, grow as many.

    Every edge gets a gate :math:`w_e` (1 on the graph's edges, 0 on a pool of ``pool`` times as
    many sampled non-edges) passed as the attention ``edge_weight``; one forward and backward on
    ``inputs`` gives :math:`g_e = \partial L / \partial w_e`, summed over both directions of a
    pair. The edges with the smallest :math:`|g_e|` (the first-order loss change of removing
    them; attention edges have no weight magnitude of their own) are dropped; as many non-edges
    are grown, uniformly at random (``"set"``) or those with the largest :math:`|g_e|` (``"rigl"``,
    the loss change of opening them). The edge count, symmetry and no-self-loop property are kept;
    the model's weights do not depend on the edge set, so nothing else changes.
    """
    if mode not in REWIRED:
        raise ValueError(f"mode must be one of {list(REWIRED)}, got {mode!r}")
    n = graph.num_nodes
    edge_keys = torch.unique(undirected_keys(graph.edge_index, n))
    count = int(fraction * edge_keys.numel())
    if count == 0:
        return graph
    candidates = sample_non_edges(n, edge_keys, pool * edge_keys.numel(), generator, undirected=True)
    keys = torch.cat([edge_keys, candidates])
    edge_index, pair_id = both_directions(decode_undirected(keys, n), n)
    device = next(model.parameters()).device
    gates = torch.cat([torch.ones(edge_keys.numel()), torch.zeros(candidates.numel())]).to(device)[pair_id.to(device)]
    gates.requires_grad_(True)
    edge_index = edge_index.to(device)
    loss = F.cross_entropy(model(inputs, edges=(edge_index, gates)), labels)
    (grad,) = torch.autograd.grad(loss, gates)
    score = torch.zeros(keys.numel(), device=device).index_add_(0, pair_id.to(device), grad.abs()).cpu()
    existing, candidate = score[:edge_keys.numel()], score[edge_keys.numel():]
    keep = edge_keys[existing.argsort(descending=True, stable=True)[:edge_keys.numel() - count]]
    if mode == "set":
        grow = candidates[torch.randperm(candidates.numel(), generator=generator)[:count]]
    else:
        grow = candidates[candidate.argsort(descending=True, stable=True)[:count]]
    pairs = decode_undirected(torch.cat([keep, grow]), n)
    return CrossModalGraph.from_edge_index(torch.cat([pairs, pairs.flip(0)], dim=1), graph.node_counts, k=graph.k,
                                           seed=graph.seed, order=graph.order, ring_order=graph.ring_order)


def _batches(data: CrossModalRelay, batch_size: int, generator: torch.Generator | None):
    order = torch.randperm(len(data), generator=generator) if generator is not None else torch.arange(len(data))
    for start in range(0, len(data), batch_size):
        items = [data[int(i)] for i in order[start:start + batch_size]]
        yield ({m: torch.stack([x[m] for x, _ in items]) for m in data.modalities},
               torch.stack([y for _, y in items]))


def _beta(graph: CrossModalGraph | LearnableWSGraph | None) -> float | None:
    if isinstance(graph, LearnableWSGraph):
        return graph.mean_beta()
    return None if graph is None else graph.beta


def run_one(topology: str, tokens: int, seed: int, *, k: int = 8, layers: int = 4, width: int = 32, heads: int = 4,
            epochs: int = 10, train_samples: int = 2000, test_samples: int = 1000, num_classes: int = 4,
            label: str = "sum", placement: str = "random",
            curriculum: tuple[tuple[int, int], ...] = DEFAULT_CURRICULUM, lr: float = 1e-3,
            topology_lr: float = 0.01, rewire_every: int = 50, rewire_fraction: float = 0.3, batch_size: int = 32,
            device: str | torch.device = "cpu") -> dict[str, Any]:
    """Train one model on :class:`~wsfusion.data.CrossModalRelay` and report accuracy, graph statistics and cost.

    ``label="sum"`` trains on the pair label and scores the sum (module docstring); ``"pair"`` and
    ``"key"`` train and score that label. The curriculum's stages shorter than ``tokens`` come first,
    each on the same topology rebuilt for its length. ``topology_lr`` is the learned beta's own
    learning rate. ``set`` / ``rigl`` rewire every ``rewire_every`` steps, a fraction
    ``rewire_fraction`` of the edges decayed by a cosine over the whole run (as RigL), and restart
    from the lattice at each stage. ``ms_per_step`` is the median over the target-length steps
    (rewiring excluded).
    """
    if not _known(topology):
        raise ValueError(f"topology must be one of {_EXPECTED}, got {topology!r}")
    device = torch.device(device)
    torch.manual_seed(seed)
    train_label = "pair" if label == "sum" else label
    stages = [(t, e) for t, e in curriculum if t < tokens] + [(tokens, epochs)]
    if topology.startswith("learned-"):
        short = [t for t, _ in stages if 3 * t < 2 * k + 1]
        if short:
            raise ValueError(f"a learned topology needs 3 * tokens >= 2 k + 1 = {2 * k + 1} nodes at every "
                             f"curriculum stage (room for N k / 2 shortcut candidates); stages {short} are shorter")

    def split(name: str, length: int, n: int, data_seed: int, lab: str) -> CrossModalRelay:
        return CrossModalRelay(name, tokens=length, num_samples=n, num_classes=num_classes, label=lab,
                               placement=placement, local_window=min(2, length), seed=data_seed)

    test = split("test", tokens, test_samples, seed, train_label)
    graph = build_topology(topology, tokens, k, seed)
    first = graph if stages[0][0] == tokens else build_topology(topology, stages[0][0], k, seed)
    model = RoutingModel(test.feature_dim, width, heads, layers, test.num_labels, first).to(device)
    learned = isinstance(first, LearnableWSGraph)
    topology_params = [first.beta_logit] if learned else []
    others = [p for p in model.parameters() if all(p is not q for q in topology_params)]
    optimizer = torch.optim.AdamW([{"params": others, "lr": lr},
                                   {"params": topology_params, "lr": topology_lr, "weight_decay": 0.0}])
    generator = torch.Generator().manual_seed(seed)
    step_ms: list[float] = []
    history: list[dict[str, Any]] = []

    def step(inputs: dict[str, Tensor], labels: Tensor) -> float:
        loss = F.cross_entropy(model(inputs), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    epoch_index = step_index = 0
    total_steps = sum(e for _, e in stages) * math.ceil(train_samples / batch_size)
    for length, stage_epochs in stages:
        if length != stages[0][0]:
            model.set_graph(graph if length == tokens else build_topology(topology, length, k, seed))
            model.to(device)
        for _ in range(stage_epochs):
            model.train()
            losses = []
            # fresh samples every epoch; train seeds never meet the test split's (seed, "test") stream
            data = split("train", length, train_samples, seed * 1_000_003 + epoch_index + 1, train_label)
            for inputs, labels in _batches(data, batch_size, generator):
                inputs, labels = {m: x.to(device) for m, x in inputs.items()}, labels.to(device)
                start = time.perf_counter()
                losses.append(step(inputs, labels))
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if length == tokens:
                    step_ms.append((time.perf_counter() - start) * 1e3)
                step_index += 1
                if topology in REWIRED and step_index % rewire_every == 0:
                    fraction = rewire_fraction * (1 + math.cos(math.pi * step_index / total_steps)) / 2
                    model.set_graph(rewire_attention(model, model.graph, inputs, labels, fraction, topology, generator))
            history.append({"tokens": length, "train_loss": statistics.mean(losses), "beta": _beta(model.graph)})
            epoch_index += 1
    model.eval()
    correct = correct_label = 0
    with torch.no_grad():
        for inputs, labels in _batches(test, 256, None):
            predicted = model({m: x.to(device) for m, x in inputs.items()}).argmax(-1).cpu()
            correct_label += int((predicted == labels).sum())
            if label == "sum":
                predicted, labels = test.pair_to_sum(predicted), test.pair_to_sum(labels)
            correct += int((predicted == labels).sum())
    evaluated = model.eval_graph if learned else model.graph
    beta = None if topology in REWIRED else _beta(model.graph if learned else graph)
    sample, labels = next(_batches(test, batch_size, None))
    sample, labels = {m: x.to(device) for m, x in sample.items()}, labels.to(device)
    model.train()

    def forward_backward() -> None:  # a training step's memory, without changing the model it reports on
        F.cross_entropy(model(sample), labels).backward()
        optimizer.zero_grad(set_to_none=True)

    peak = peak_memory_mb({"step": forward_backward}, device)["step"]
    return {
        "topology": topology, "tokens": tokens, "nodes": 3 * tokens, "seed": seed,
        "edges": None if evaluated is None else evaluated.num_edges, "k": k, "layers": layers,
        "test_acc": correct / len(test), "train_label_acc": correct_label / len(test),
        "chance": 1 / (num_classes if label == "sum" else test.num_labels),
        **path_statistics(evaluated, seed),
        **(query_reach(evaluated, tokens, layers, num_classes, label) if placement == "random" else {}),
        "beta": beta,
        "ms_per_step": statistics.median(step_ms) if step_ms else None,
        "peak_mb": peak, "device": device.type,
        "label": label, "placement": placement, "epochs": epochs, "history": history,
        "config": {"k": k, "layers": layers, "width": width, "heads": heads, "epochs": epochs,
                   "train_samples": train_samples, "test_samples": test_samples, "num_classes": num_classes,
                   "label": label, "placement": placement, "curriculum": [list(s) for s in curriculum], "lr": lr,
                   "topology_lr": topology_lr, "rewire_every": rewire_every, "rewire_fraction": rewire_fraction,
                   "batch_size": batch_size},
    }


DEFAULT_TOKENS = (16, 64, 256)
QUICK = dict(tokens=(16,), topologies=("lattice", "ws-0.3", "bigbird", "dense"), seeds=(0,), epochs=1,
             train_samples=128, test_samples=64, layers=2, curriculum=((8, 1),))


_RUN_ONE_DEFAULTS = {name: p.default for name, p in inspect.signature(run_one).parameters.items()
                     if p.kind is inspect.Parameter.KEYWORD_ONLY and name != "device"}


def _config(options: dict[str, Any]) -> dict[str, Any]:
    """The ``config`` a row of :func:`run_one` gets for these options (defaults filled in)."""
    unknown = sorted(set(options) - set(_RUN_ONE_DEFAULTS))
    if unknown:
        raise TypeError(f"unknown run_one options {unknown}; expected some of {sorted(_RUN_ONE_DEFAULTS)}")
    config = {**_RUN_ONE_DEFAULTS, **options}
    config["curriculum"] = [list(s) for s in config["curriculum"]]
    return config


def load_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows saved by :func:`run` with ``out=path`` (``[]`` if there is none yet)."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else []


def _save_row(path: Path, row: dict[str, Any], present: Any) -> None:
    """Append ``row`` to the rows at ``path`` unless ``present(rows)``; read-merge-write under an exclusive lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        saved = load_rows(path)
        if not present(saved):
            text = json.dumps(saved + [row], indent=1, allow_nan=False).encode()
            atomic_write(path, lambda f: f.write(text))


def run(tokens: tuple[int, ...] = DEFAULT_TOKENS, topologies: tuple[str, ...] = TOPOLOGIES,
        seeds: tuple[int, ...] = (0, 1, 2, 3, 4), device: str | torch.device = "cpu",
        out: str | Path | None = None, progress: bool = False, **options: Any) -> list[dict[str, Any]]:
    """One row per (tokens, topology, seed); options go to :func:`run_one`.

    With ``out`` (a JSON file) every finished row is saved at once (atomically, under a file lock,
    merged with what other processes saved meanwhile) and rows already there with the same
    topology, tokens, seed, options and device type are reused, so a killed sweep resumes where it
    stopped and several processes can share one file. ``progress`` prints one line per row to stderr.
    """
    unknown = [t for t in topologies if not _known(t)]
    if unknown:
        raise ValueError(f"unknown topologies {unknown}; expected some of {_EXPECTED}")
    config = _config(options)
    device_type = torch.device(device).type

    def find(saved: list[dict[str, Any]], t: str, n: int, s: int) -> dict[str, Any] | None:
        return next((r for r in saved if (r["topology"], r["tokens"], r["seed"]) == (t, n, s)
                     and r.get("config") == config and r.get("device", "cpu") == device_type), None)

    rows = []
    for n in tokens:
        for t in topologies:
            for s in seeds:
                cached = find(load_rows(out), t, n, s) if out is not None else None
                row = cached or run_one(t, n, s, device=device, **options)
                rows.append(row)
                if cached is None and out is not None:
                    _save_row(Path(out), row, lambda saved: find(saved, t, n, s) is not None)
                if progress:
                    print(f"routing {t} T={n} seed={s}: test acc {row['test_acc']:.3f}"
                          + (" (saved)" if cached else ""), file=sys.stderr, flush=True)
    return rows


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean test accuracy with a 95% t-interval per (tokens, topology), with the graph and cost columns.

    Rows of different options or device types are never pooled: each combination is its own group
    (with its ``config``), so filter the rows first to report one experiment.
    """
    from scipy import stats

    groups: dict[tuple[int, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        setting = json.dumps([row.get("config"), row.get("device", "cpu")], sort_keys=True)
        groups.setdefault((row["tokens"], row["topology"], setting), []).append(row)
    out = []
    for (tokens, topology, _), group in groups.items():
        accs = [r["test_acc"] for r in group]
        half = (stats.t.ppf(0.975, len(accs) - 1) * statistics.stdev(accs) / math.sqrt(len(accs))
                if len(accs) > 1 else None)
        betas = [r.get("beta") for r in group]

        def mean(key: str) -> float | None:
            values = [r.get(key) for r in group]
            return None if None in values else statistics.mean(values)

        diameters = [r["diameter"] for r in group]
        out.append({"tokens": tokens, "topology": topology, "seeds": len(accs), "test_acc": statistics.mean(accs),
                    "test_acc_ci95": half, "edges": mean("edges"),
                    "avg_path_length": mean("avg_path_length"),
                    "diameter": None if None in diameters else max(diameters),
                    "reach_bound": mean("reach_bound"),
                    "beta": None if None in betas else statistics.mean(betas),
                    "ms_per_step": None if None in (times := [r["ms_per_step"] for r in group])
                    else statistics.median(times),
                    "peak_mb": statistics.median(r["peak_mb"] for r in group if r["peak_mb"] is not None)
                    if any(r["peak_mb"] is not None for r in group) else None,
                    "config": group[0].get("config"), "device": group[0].get("device", "cpu")})
    return out


COST_TOKENS = (64, 256, 1024, 4096)


def _training_step(topology: str, tokens: int, *, k: int, layers: int, width: int, heads: int, num_classes: int,
                   batch_size: int, device: torch.device, seed: int) -> tuple[Any, CrossModalGraph | None]:
    """One training step of :class:`RoutingModel` on ``topology`` (as a closure) and the graph it runs on."""
    torch.manual_seed(seed)
    data = CrossModalRelay("test", tokens=tokens, num_samples=batch_size, num_classes=num_classes, label="pair",
                           seed=seed)
    graph = build_topology(topology, tokens, k, seed)
    model = RoutingModel(data.feature_dim, width, heads, layers, data.num_labels, graph).to(device)
    optimizer = torch.optim.AdamW(model.parameters())
    inputs, labels = next(_batches(data, batch_size, None))
    inputs, labels = {m: x.to(device) for m, x in inputs.items()}, labels.to(device)

    def step() -> None:
        loss = F.cross_entropy(model(inputs), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step, evaluation_sample(graph) if isinstance(graph, LearnableWSGraph) else graph


def cost(tokens: tuple[int, ...] = COST_TOKENS, topologies: tuple[str, ...] = ("lattice", "ws-0.3", "bigbird", "dense"),
         max_dense_tokens: int | None = 1024, *, k: int = 8, layers: int = 4, width: int = 32, heads: int = 4,
         num_classes: int = 4, batch_size: int = 32, reps: int = 5, device: str | torch.device = "cpu",
         seed: int = 0) -> list[dict[str, Any]]:
    """Milliseconds and peak extra MB of one training step per (tokens, topology), on untrained weights.

    The same model, batch and optimizer as :func:`run_one`, on random relay inputs: cost does not
    depend on what the weights learned, so it can be measured at lengths where training every
    topology is out of reach. At each length the topologies' steps run interleaved (medians of
    ``reps``), so a slow spell of the machine does not favour one of them. ``dense`` beyond
    ``max_dense_tokens`` is skipped (a row with ``ms_per_step=None`` and ``skipped`` saying why), as
    its quadratic time is out of a CPU run's reach. Graph statistics and query reach come with it.
    """
    device = torch.device(device)
    options = dict(k=k, layers=layers, width=width, heads=heads, num_classes=num_classes, batch_size=batch_size,
                   device=device, seed=seed)
    rows = []
    for n in tokens:
        skipped = {t for t in topologies if t == "dense" and max_dense_tokens is not None and n > max_dense_tokens}
        built = {t: _training_step(t, n, **options) for t in topologies if t not in skipped}
        ms = interleaved_medians({t: step for t, (step, _) in built.items()}, reps, device, warmup=1)
        for t in topologies:
            if t in skipped:
                rows.append({"topology": t, "tokens": n, "nodes": 3 * n, "batch_size": batch_size, "ms_per_step": None,
                             "peak_mb": None, "skipped": f"dense beyond {max_dense_tokens} tokens per modality"})
                continue
            step, graph = built[t]
            rows.append({"topology": t, "tokens": n, "nodes": 3 * n, "batch_size": batch_size,
                         "edges": None if graph is None else graph.num_edges, "ms_per_step": ms[t],
                         "peak_mb": peak_memory_mb({"step": step}, device)["step"],
                         **path_statistics(graph, seed), **query_reach(graph, n, layers, num_classes)})
        del built
    return rows


def plot(summary_rows: list[dict[str, Any]], path: str | Path, cost_rows: list[dict[str, Any]] | None = None) -> None:
    """Accuracy vs tokens per topology (with each graph's perfect-relay bound, dashed) and, with ``cost_rows``,
    milliseconds per training step vs tokens; one PNG."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    order = [*TOPOLOGIES, *REWIRED]
    names = list(dict.fromkeys(r["topology"] for r in [*summary_rows, *(cost_rows or [])]))
    # the ten default colours for the fixed and rewired graphs, distinct ones for any others (learned)
    palette = [*colormaps["tab10"].colors, "black", "goldenrod", "navy", "lime", "maroon", "teal"]
    others = [name for name in names if name not in order]
    colors = {name: palette[(order.index(name) if name in order else len(order) + others.index(name)) % len(palette)]
              for name in names}
    panels = 2 if cost_rows else 1
    fig = Figure(figsize=(6.5 * panels, 5.4))
    ax = fig.add_subplot(1, panels, 1)
    for name in dict.fromkeys(r["topology"] for r in summary_rows):
        rows = sorted((r for r in summary_rows if r["topology"] == name), key=lambda r: r["tokens"])
        x = [r["tokens"] for r in rows]
        acc = [r["test_acc"] for r in rows]
        half = [r["test_acc_ci95"] or 0.0 for r in rows]
        # a t-interval over two or three seeds can exceed [0, 1]; accuracy cannot
        yerr = [[min(h, a) for a, h in zip(acc, half)], [min(h, 1.0 - a) for a, h in zip(acc, half)]]
        trained = name in TOPOLOGIES
        ax.errorbar(x, acc, yerr=yerr, marker="o" if trained else "s", linestyle="-" if trained else ":",
                    capsize=3, color=colors[name], label=name)
        if all(r.get("reach_bound") is not None for r in rows) and trained and name != "dense":
            ax.plot(x, [r["reach_bound"] for r in rows], linestyle="--", color=colors[name], alpha=0.5)
    ax.set_ylim(0.0, 1.05)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("tokens per modality T")
    ax.set_ylabel("test accuracy (sum label)")
    ax.set_title("relay accuracy (dashed: perfect relay on the fixed graph;\ndotted: rewired / learned)",
                 fontsize=10)
    ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    if cost_rows:
        ax = fig.add_subplot(1, 2, 2)
        for name in dict.fromkeys(r["topology"] for r in cost_rows):
            rows = sorted((r for r in cost_rows if r["topology"] == name and r["ms_per_step"] is not None),
                          key=lambda r: r["tokens"])
            ax.plot([r["tokens"] for r in rows], [r["ms_per_step"] for r in rows], marker="o", label=name,
                    color=colors[name])
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("tokens per modality T")
        ax.set_ylabel("ms per training step")
        ax.set_title("cost per step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
