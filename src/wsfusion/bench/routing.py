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
  learns even the one-code relay at ``T = 64`` while dense does. :data:`LONG_CURRICULUM` adds a
  ``T = 64`` and a ``T = 256`` stage, for targets of 256 tokens and beyond.
* **fresh samples every epoch** (``train_samples`` each), so no topology can memorise noise.
* **the last epoch is scored** (no selection on a validation split; the trainer's validation
  accuracy at the stage's length is in the history).

Training runs through :func:`wsfusion.train.train` like every other model of the library: the
curriculum and the fresh samples are a data schedule (:class:`RelayCurriculum`), SET / RigL on
the attention graph is :class:`~wsfusion.train.Rewirer` with ``edges="attention"``, and a
learned beta is the trainer's topology parameter group. This module keeps the task's wiring
(topologies, model, scoring on the sum label, graph statistics) and the reporting.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from wsfusion._io import atomic_write_text
from wsfusion._measure import interleaved_medians, machine, peak_memory_mb, sync
from wsfusion.bench.routing_task import (
    DEFAULT_CURRICULUM,
    LONG_CURRICULUM,
    EXACT_PATHS_MAX_NODES,
    LEARNED,
    PATH_SOURCES,
    REWIRED,
    TOPOLOGIES,
    RoutingModel,
    RoutingTopology,
    build_topology,
    evaluation_sample,
    parse_topology,
    path_statistics,
    query_reach,
)
from wsfusion.data import CrossModalRelay
from wsfusion.graphs import CrossModalGraph
from wsfusion.topology import LearnableWSGraph
from wsfusion.train import Callback, Rewirer, TrainConfig, batches, train
from wsfusion.train.runs import read_record, write_record
from wsfusion.train.stats import ci95
from wsfusion.train.trainer import ModalitySubset

__all__ = [
    "TOPOLOGIES", "LEARNED", "REWIRED", "DEFAULT_CURRICULUM", "LONG_CURRICULUM", "EXACT_PATHS_MAX_NODES", "PATH_SOURCES",
    "RoutingModel", "RoutingTopology", "parse_topology", "build_topology", "evaluation_sample", "path_statistics",
    "query_reach",
    "RelayCurriculum", "StepTimer", "run_one", "run", "load_rows", "summary", "cost",
]


def in_memory(data: CrossModalRelay) -> ModalitySubset:
    """A relay split as the trainer's in-memory tensors (generated once: ``data.inputs`` draws every sample)."""
    return ModalitySubset(inputs=data.inputs, labels=data.labels, modality_shapes=data.modality_shapes,
                          num_classes=data.num_labels, input_masks={})


class RelayCurriculum(Callback):
    """The routing protocol's data schedule: each stage's length in turn, fresh samples every epoch.

    ``stages`` are ``(tokens, epochs)``. At a stage's first epoch the model gets the topology
    rebuilt for that length (a learned beta carries over through
    :meth:`~wsfusion.topology.LearnableWSGraph.with_nodes`; SET / RigL restart from the lattice)
    and the validation split becomes one at that length. Epoch ``e`` trains on the samples of
    seed ``seed * 1_000_003 + e + 1``, which never meet the test split's stream. Every epoch
    restarts the trainer's model selection, so the last epoch is the one tested. Each epoch's
    metrics get its ``tokens`` and the graph's ``beta``.
    """

    def __init__(self, topology: str, stages: list[tuple[int, int]], *, k: int, seed: int, train_samples: int,
                 val_samples: int, make_split: Any) -> None:
        self.topology, self.stages, self.k, self.seed = parse_topology(topology), stages, k, seed
        self.train_samples, self.val_samples, self.make_split = train_samples, val_samples, make_split
        self.current: int | None = None
        self._last: dict[str, tuple[tuple[int, int, int], ModalitySubset]] = {}

    def stage_of(self, epoch: int) -> int:
        ends = np.cumsum([e for _, e in self.stages])
        return int(min(np.searchsorted(ends, epoch, side="right"), len(self.stages) - 1))

    def train_split(self, epoch: int) -> ModalitySubset:
        tokens = self.stages[self.stage_of(epoch)][0]
        return self._split("train", tokens, self.train_samples, self.seed * 1_000_003 + epoch + 1)

    def val_split(self, stage: int) -> ModalitySubset:
        return self._split("val", self.stages[stage][0], self.val_samples, self.seed)

    def _split(self, name: str, tokens: int, samples: int, data_seed: int) -> ModalitySubset:
        # The trainer starts on the first epoch's splits and the schedule then asks for them again:
        # the last split of each name is kept, so none is generated twice.
        key = (tokens, samples, data_seed)
        if self._last.get(name, (None,))[0] != key:
            self._last[name] = (key, in_memory(self.make_split(name, tokens, samples, data_seed)))
        return self._last[name][1]

    def graph_for(self, model: RoutingModel, tokens: int) -> CrossModalGraph | LearnableWSGraph | None:
        if isinstance(model.graph, LearnableWSGraph):
            counts = {m: tokens for m in CrossModalRelay.modalities}
            return model.graph if model.graph.nodes == counts else model.graph.with_nodes(counts)
        return self.topology.build(tokens, self.k, self.seed)

    def _enter(self, trainer: Any, stage: int) -> None:
        tokens = self.stages[stage][0]
        model = trainer.model
        model.set_graph(self.graph_for(model, tokens), self.topology.depth(tokens, self.k, len(model.attention)))
        trainer.model.to(next(trainer.model.parameters()).device)
        trainer.val_set = self.val_split(stage)
        self.current = stage

    def on_train_start(self, trainer: Any) -> None:
        self._enter(trainer, self.stage_of(trainer.epoch))

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        if self.stage_of(epoch) != self.current:
            self._enter(trainer, self.stage_of(epoch))
        trainer.train_set = self.train_split(epoch)
        trainer.restart_selection()

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: dict[str, Any]) -> None:
        metrics["tokens"] = self.stages[self.current][0]
        metrics["beta"] = _beta(trainer.model.graph)


class StepTimer(Callback):
    """Milliseconds of each training step (forward, backward, optimiser) on sequences of ``tokens``."""

    def __init__(self, tokens: int) -> None:
        self.tokens = tokens
        self.ms: list[float] = []
        self._start: float | None = None

    def on_step_start(self, trainer: Any, step: int) -> None:
        shapes = trainer.train_set.modality_shapes
        self._start = time.perf_counter() if next(iter(shapes.values()))[0] == self.tokens else None

    def on_step_end(self, trainer: Any, step: int) -> None:
        if self._start is not None:
            sync(next(trainer.model.parameters()).device)
            self.ms.append((time.perf_counter() - self._start) * 1e3)


def _beta(graph: CrossModalGraph | LearnableWSGraph | None) -> float | None:
    if isinstance(graph, LearnableWSGraph):
        return graph.mean_beta()
    return None if graph is None else graph.beta


def run_one(topology: str, tokens: int, seed: int, *, k: int = 8, layers: int = 4, width: int = 32, heads: int = 4,
            epochs: int = 10, train_samples: int = 2000, test_samples: int = 1000, num_classes: int = 4,
            label: str = "sum", placement: str = "random",
            curriculum: tuple[tuple[int, int], ...] = DEFAULT_CURRICULUM, lr: float = 1e-3,
            topology_lr: float = 0.01, rewire_every: int = 50, rewire_fraction: float = 0.3, batch_size: int = 32,
            device: str | torch.device = "cpu", out: str | Path | None = None) -> dict[str, Any]:
    """Train one model on :class:`~wsfusion.data.CrossModalRelay` and report accuracy, graph statistics and cost.

    ``label="sum"`` trains on the pair label and scores the sum (module docstring); ``"pair"`` and
    ``"key"`` train and score that label. The curriculum's stages shorter than ``tokens`` come first,
    each on the same topology rebuilt for its length. ``topology_lr`` is the learned beta's own
    learning rate. ``set`` / ``rigl`` rewire every ``rewire_every`` steps, a fraction
    ``rewire_fraction`` of the edges decayed by a cosine over the whole run (as RigL), and restart
    from the lattice at each stage. ``ms_per_step`` is the median over the target-length steps
    (rewiring excluded). AdamW (weight decay 0.01) at a constant ``lr``, through
    :func:`wsfusion.train.train`; with ``out`` (a folder) the run checkpoints every epoch there and
    a killed run resumes.
    """
    spec = parse_topology(topology)
    device = torch.device(device)
    train_label = "pair" if label == "sum" else label
    stages = [(t, e) for t, e in curriculum if t < tokens] + [(tokens, epochs)]
    if topology.startswith("learned-"):
        short = [t for t, _ in stages if 3 * t < 2 * k + 1]
        if short:
            raise ValueError(f"a learned topology needs 3 * tokens >= 2 k + 1 = {2 * k + 1} nodes at every "
                             f"curriculum stage (room for N k / 2 shortcut candidates); stages {short} are shorter")

    def split(name: str, length: int, n: int, data_seed: int) -> CrossModalRelay:
        return CrossModalRelay(name, tokens=length, num_samples=n, num_classes=num_classes, label=train_label,
                               placement=placement, local_window=min(2, length), seed=data_seed)

    torch.manual_seed(seed)
    test = split("test", tokens, test_samples, seed)
    test_set = in_memory(test)  # generated once: every access to test.inputs draws the samples again
    first = spec.build(stages[0][0], k, seed)
    model = RoutingModel(test.feature_dim, width, heads, layers, test.num_labels, first,
                         spec.depth(stages[0][0], k, layers))
    learned = isinstance(first, LearnableWSGraph)
    schedule = RelayCurriculum(topology, stages, k=k, seed=seed, train_samples=train_samples,
                               val_samples=min(test_samples, 256), make_split=split)
    timer = StepTimer(tokens)
    callbacks: list[Callback] = [schedule, timer]
    if spec.rewire is not None:
        callbacks.append(Rewirer(edges="attention", mode=spec.rewire, delta_t=rewire_every, alpha=rewire_fraction,
                                 end_fraction=1.0, pool_factor=4, seed=seed))
    config = TrainConfig(epochs=sum(e for _, e in stages), batch_size=batch_size, lr=lr, weight_decay=0.01,
                         lr_schedule="constant", warmup_epochs=0.0, topology_lr=topology_lr if learned else None,
                         seed=seed, device=str(device))
    result, model = train(config, out, resume=out is not None, model=model, callbacks=callbacks, progress=False,
                          datasets=(schedule.train_split(0), schedule.val_split(0), test_set))
    model.eval()
    with torch.no_grad():
        predicted = torch.cat([model({m: x.to(device) for m, x in inputs.items()}).argmax(-1).cpu()
                               for inputs, _, _ in batches(test_set, 256)])
    labels = test.labels
    correct_label = int((predicted == labels).sum())
    if label == "sum":
        predicted, labels = test.pair_to_sum(predicted), test.pair_to_sum(labels)
    evaluated = model.eval_graph if learned else model.graph
    sample = {m: x[:batch_size].to(device) for m, x in test_set.inputs.items()}
    sample_labels = test.labels[:batch_size].to(device)
    model.train()

    def forward_backward() -> None:  # a training step's memory, without changing the model it reports on
        F.cross_entropy(model(sample), sample_labels).backward()
        model.zero_grad(set_to_none=True)

    peak = peak_memory_mb({"step": forward_backward}, device)["step"]
    return {
        "topology": topology, "tokens": tokens, "nodes": 3 * tokens, "seed": seed,
        "edges": None if evaluated is None else evaluated.num_edges, "k": k, "layers": layers,
        "depth": model.depth, "params": sum(p.numel() for p in model.parameters()),
        "test_acc": int((predicted == labels).sum()) / len(test), "train_label_acc": correct_label / len(test),
        "chance": 1 / (num_classes if label == "sum" else test.num_labels),
        **path_statistics(evaluated, seed),
        **(query_reach(evaluated, tokens, model.depth, num_classes, label) if placement == "random" else {}),
        "beta": None if spec.rewire is not None else _beta(model.graph),
        "ms_per_step": statistics.median(timer.ms) if timer.ms else None,
        "peak_mb": peak, "device": device.type,
        "label": label, "placement": placement, "epochs": epochs,
        "history": [{"tokens": r["tokens"], "train_loss": r["train_loss"], "val_acc": r["val_acc"], "beta": r["beta"]}
                    for r in result["history"]],
        "config": {"k": k, "layers": layers, "width": width, "heads": heads, "epochs": epochs,
                   "train_samples": train_samples, "test_samples": test_samples, "num_classes": num_classes,
                   "label": label, "placement": placement, "curriculum": [list(s) for s in curriculum], "lr": lr,
                   "topology_lr": topology_lr, "rewire_every": rewire_every, "rewire_fraction": rewire_fraction,
                   "batch_size": batch_size},
    }


DEFAULT_TOKENS = (16, 64, 256)
#: ``wsfusion bench --suite routing --quick``: one row of each kind the T = 1,024 comparison trains (a
#: fixed graph, a hub, growing depth, rewiring, learned beta) and dense, at tiny sizes: under a minute.
QUICK = dict(tokens=(16,), topologies=("lattice", "ws-0.3", "bigbird", "ws-0.3-hub1", "ws-0.3-deep", "rigl-ws-0.3",
                                       "learned-0.5", "dense"),
             seeds=(0,), epochs=1, train_samples=128, test_samples=64, layers=2, curriculum=((8, 1),),
             rewire_every=2)  # 4 steps a stage: rigl rewires twice


_RUN_ONE_DEFAULTS = {name: p.default for name, p in inspect.signature(run_one).parameters.items()
                     if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in ("device", "out")}
#: Bump when what a stored row holds or how it is computed changes: older rows are then redone.
ROW_VERSION = 2
ROW = "row.json"


def _config(options: dict[str, Any]) -> dict[str, Any]:
    """The ``config`` a row of :func:`run_one` gets for these options (defaults filled in)."""
    unknown = sorted(set(options) - set(_RUN_ONE_DEFAULTS))
    if unknown:
        raise TypeError(f"unknown run_one options {unknown}; expected some of {sorted(_RUN_ONE_DEFAULTS)}")
    config = {**_RUN_ONE_DEFAULTS, **options}
    config["curriculum"] = [list(s) for s in config["curriculum"]]
    return config


def runs_dir(path: str | Path) -> Path:
    """Where :func:`run` keeps the run folders of the rows file ``path``: ``<folder>/runs/<stem>/``."""
    path = Path(path)
    return path.parent / "runs" / path.stem


def run_folder(topology: str, tokens: int, seed: int, config: dict[str, Any], device_type: str) -> str:
    """A run's folder name: readable, and unique per options and device (a digest of them)."""
    digest = hashlib.sha1(json.dumps([config, device_type], sort_keys=True).encode()).hexdigest()[:8]
    return f"{topology}-T{tokens}-seed{seed}-{digest}"


def _key(row: dict[str, Any]) -> str:
    return json.dumps([row["topology"], row["tokens"], row["seed"], row.get("config"), row.get("device", "cpu")],
                      sort_keys=True)


def load_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows saved by :func:`run` with ``out=path``: the rows file, and the rows of its run folders that a
    process sharing the sweep finished but whose rewrite of the file it lost (``[]`` if there is none yet)."""
    path = Path(path)
    rows = json.loads(path.read_text()) if path.exists() else []
    known = {_key(r) for r in rows}
    folder = runs_dir(path)
    for record in sorted(folder.glob(f"*/{ROW}")) if folder.exists() else []:
        saved = read_record(record, lambda r: r.get("version") == ROW_VERSION)
        if saved is not None and _key(saved["row"]) not in known:
            rows.append(saved["row"])
            known.add(_key(saved["row"]))
    return rows


def _save_row(path: Path, row: dict[str, Any]) -> None:
    """Add ``row`` to the rows file ``path`` (read, merge with what other processes saved, write atomically)."""
    rows = [r for r in load_rows(path) if _key(r) != _key(row)] + [row]
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(rows, indent=1, allow_nan=False))


def run(tokens: tuple[int, ...] = DEFAULT_TOKENS, topologies: tuple[str, ...] = TOPOLOGIES,
        seeds: tuple[int, ...] = (0, 1, 2, 3, 4), device: str | torch.device = "cpu",
        out: str | Path | None = None, progress: bool = False, **options: Any) -> list[dict[str, Any]]:
    """One row per (tokens, topology, seed); options go to :func:`run_one`.

    With ``out`` (a JSON file) each run trains in its own folder under :func:`runs_dir` (checkpoints
    every epoch: a killed run resumes), its row is stored there (:mod:`wsfusion.train.runs`, as
    ``compare`` stores its evaluations) and merged into ``out`` atomically. Rows already saved
    with the same topology, tokens, seed, options and device type are reused, so a killed sweep
    resumes where it stopped and several processes can share one file (each run has its own
    folder, and :func:`load_rows` reads the folders too). ``progress`` prints one line per row to
    stderr.
    """
    for t in topologies:
        parse_topology(t)  # refuse an unknown label before any run starts
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
                if cached is None:
                    folder = None if out is None else runs_dir(out) / run_folder(t, n, s, config, device_type)
                    row = run_one(t, n, s, device=device, out=folder, **options)
                    if out is not None:
                        write_record(folder / ROW, {"version": ROW_VERSION, "row": row})
                        _save_row(Path(out), row)
                else:
                    row = cached
                rows.append(row)
                if progress:
                    print(f"routing {t} T={n} seed={s}: test acc {row['test_acc']:.3f}"
                          + (" (saved)" if cached else ""), file=sys.stderr, flush=True)
    return rows


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean test accuracy with a 95% t-interval per (tokens, topology), with the graph and cost columns.

    Rows of different options or device types are never pooled: each combination is its own group
    (with its ``config``), so filter the rows first to report one experiment.
    """
    groups: dict[tuple[int, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        setting = json.dumps([row.get("config"), row.get("device", "cpu")], sort_keys=True)
        groups.setdefault((row["tokens"], row["topology"], setting), []).append(row)
    out = []
    for (tokens, topology, _), group in groups.items():
        accs = [r["test_acc"] for r in group]
        half = ci95(accs) if len(accs) > 1 else None
        betas = [r.get("beta") for r in group]

        def mean(key: str) -> float | None:
            values = [r.get(key) for r in group]
            return None if None in values else statistics.mean(values)

        diameters = [r["diameter"] for r in group]
        params = {r.get("params") for r in group}
        depths = [r.get("depth", r.get("layers")) for r in group]
        out.append({"tokens": tokens, "topology": topology, "seeds": len(accs), "test_acc": statistics.mean(accs),
                    "test_acc_ci95": half, "edges": mean("edges"),
                    # rows from before depth existed ran ``layers`` rounds; before params, say nothing
                    "depth": None if None in depths else max(depths),
                    "params": params.pop() if len(params) == 1 else None,
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
                   batch_size: int, device: torch.device, seed: int) -> tuple[Any, CrossModalGraph | None, int]:
    """One training step of :class:`RoutingModel` on ``topology`` (as a closure), the graph it runs on and
    the model's parameter count."""
    torch.manual_seed(seed)
    data = CrossModalRelay("test", tokens=tokens, num_samples=batch_size, num_classes=num_classes, label="pair",
                           seed=seed)
    spec = parse_topology(topology)
    graph = spec.build(tokens, k, seed)
    model = RoutingModel(data.feature_dim, width, heads, layers, data.num_labels, graph,
                         spec.depth(tokens, k, layers)).to(device)
    optimizer = torch.optim.AdamW(model.parameters())
    inputs, labels = data.inputs, data.labels
    inputs, labels = {m: x.to(device) for m, x in inputs.items()}, labels.to(device)

    def step() -> None:
        loss = F.cross_entropy(model(inputs), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    params = sum(p.numel() for p in model.parameters())
    return step, evaluation_sample(graph) if isinstance(graph, LearnableWSGraph) else graph, params


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
    its quadratic time is out of a CPU run's reach. Graph statistics and query reach come with it,
    and each row's ``machine`` (:func:`wsfusion._measure.machine`): timings compare only within one machine.
    """
    device = torch.device(device)
    measured_on = machine(device)
    options = dict(k=k, layers=layers, width=width, heads=heads, num_classes=num_classes, batch_size=batch_size,
                   device=device, seed=seed)
    rows = []
    for n in tokens:
        skipped = {t for t in topologies if t == "dense" and max_dense_tokens is not None and n > max_dense_tokens}
        built = {t: _training_step(t, n, **options) for t in topologies if t not in skipped}
        ms = interleaved_medians({t: step for t, (step, _, _) in built.items()}, reps, device, warmup=1)
        for t in topologies:
            if t in skipped:
                rows.append({"topology": t, "tokens": n, "nodes": 3 * n, "batch_size": batch_size, "ms_per_step": None,
                             "peak_mb": None, "skipped": f"dense beyond {max_dense_tokens} tokens per modality",
                             "machine": measured_on})
                continue
            step, graph, params = built[t]
            depth = parse_topology(t).depth(n, k, layers)
            rows.append({"topology": t, "tokens": n, "nodes": 3 * n, "batch_size": batch_size,
                         "edges": None if graph is None else graph.num_edges, "depth": depth, "params": params,
                         "ms_per_step": ms[t],
                         "peak_mb": peak_memory_mb({"step": step}, device)["step"],
                         **path_statistics(graph, seed), **query_reach(graph, n, depth, num_classes),
                         "machine": measured_on})
        del built
    return rows


