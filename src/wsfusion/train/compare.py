"""``wsfusion compare``: every fusion on the same data, seeds and budget, with robustness and missing-modality tests.

This module runs the comparison: the rows, their runs (resumable, each evaluated once and cached) and
the summary of each row over its seeds. The statistics are :mod:`wsfusion.train.stats`, the tables
and plots :mod:`wsfusion.train.report`, the corruptions :mod:`wsfusion.data.corruptions`; their
public names stay importable from here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from wsfusion import fusion as fusion_registry
from wsfusion._io import atomic_write_text
from wsfusion._measure import interleaved_medians
from wsfusion.data.corruptions import missing_transform, noise_transform
from wsfusion.graphs import CrossModalGraph
from wsfusion.train.config import TrainConfig
from wsfusion.train.report import results_markdown, write_report
from wsfusion.train.stats import ALPHA, ci95, curve_auc, holm, mean_std, paired_p_value, verdict
from wsfusion.train.trainer import (
    RESULT,
    autocast,
    build_datasets,
    check_config,
    data_layout,
    evaluate,
    input_masks,
    select_modalities,
    train,
)

__all__ = [
    "compare", "check", "default_fusions", "run_config", "run_name", "add_paired_tests", "latency_ms",
    "row_fusion", "row_options", "warm_start_path", "NOISE_LEVELS", "UNIMODAL_PREFIX", "VARIANT_SEPARATOR",
    # re-exported from wsfusion.train.stats / .report / wsfusion.data.corruptions
    "ALPHA", "ci95", "paired_p_value", "verdict", "results_markdown", "write_report", "noise_transform",
    "missing_transform",
]

NOISE_LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)


@torch.no_grad()
def latency_ms(model: torch.nn.Module, dataset: Any, batch_size: int = 64, reps: int = 10,
               precision: str = "32") -> float:
    """Median inference time of one batch (ms), under the run's ``precision``, timed by
    :func:`wsfusion._measure.interleaved_medians` (the benchmarks' helper) after one warm-up call."""
    model.eval()
    device = next(model.parameters()).device
    inputs = {m: x[:batch_size].to(device) for m, x in dataset.inputs.items()}
    padding = {m: v[:batch_size].to(device) for m, v in input_masks(dataset).items()}

    def forward() -> None:
        with autocast(device, precision):
            model(inputs, None, padding)

    return interleaved_medians({"forward": forward}, reps, device, warmup=1)["forward"]


#: The prefix of a unimodal row: ``only-<modality>``.
UNIMODAL_PREFIX = "only-"
#: A variant row ``<fusion>@<variant>`` (e.g. ``ws-transformer@bigbird``): the fusion with the
#: options of ``fusion_options["<fusion>"]`` updated by those of ``fusion_options["<fusion>@<variant>"]``.
VARIANT_SEPARATOR = "@"


def row_fusion(name: str) -> str:
    """The registered fusion a (non-unimodal) row runs: ``name`` without its ``@<variant>``."""
    fusion, separator, variant = name.partition(VARIANT_SEPARATOR)
    if separator and not (fusion and variant):
        raise ValueError(f"compare: a variant row is <fusion>{VARIANT_SEPARATOR}<variant>, got {name!r}")
    return fusion


def row_options(name: str, fusion_options: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Row ``name``'s fusion options: ``fusion_options[name]``, over its fusion's for a variant row."""
    base = {} if VARIANT_SEPARATOR not in name else dict(fusion_options.get(row_fusion(name), {}))
    return {**base, **fusion_options.get(name, {})}


def default_fusions(modalities: Sequence[str]) -> list[str]:
    """Every registered fusion (but ``unimodal``) and an ``only-<m>`` row per modality."""
    names = [n for n in fusion_registry.available() if fusion_registry.fusion_class(n).family != "unimodal"]
    return names + [f"{UNIMODAL_PREFIX}{m}" for m in modalities]


def run_config(base: TrainConfig, name: str, seed: int, options: Mapping[str, Any]) -> TrainConfig:
    """The run of row ``name``: a fusion, a variant ``<fusion>@<variant>`` of one (its ``options`` as
    :func:`row_options` merges them), or ``only-<m>`` (that modality's encoder and the same head)."""
    if name.startswith(UNIMODAL_PREFIX):
        return base.replace(fusion="unimodal", modalities=[name[len(UNIMODAL_PREFIX):]], seed=seed,
                            fusion_options=dict(options))
    fusion = row_fusion(name)
    if fusion_registry.fusion_class(fusion).family == "unimodal":
        raise ValueError(f"compare: name a unimodal row by its modality, {UNIMODAL_PREFIX}<modality>, not {name!r}")
    return base.replace(fusion=fusion, seed=seed, fusion_options=dict(options))


def check_rows(fusions: Sequence[str], fusion_options: Mapping[str, Any], modalities: Sequence[str]) -> None:
    """Fail before any training on a row or an options key that names nothing."""
    for name in fusions:
        if name.startswith(UNIMODAL_PREFIX):
            if name[len(UNIMODAL_PREFIX):] not in modalities:
                raise ValueError(f"compare: row {name!r} names no modality of the data {list(modalities)}")
        else:
            run_config(TrainConfig(), name, 0, {})  # unknown and unimodal names raise here
    for name in fusion_options:
        if not name.startswith(UNIMODAL_PREFIX):
            fusion_registry.fusion_class(row_fusion(name))  # an options key that is no fusion is a typo


def run_name(name: str, seed: int, precision: str = "32") -> str:
    """The folder of one run under ``out/runs/``: ``late-seed0``, and ``late-seed0-bf16`` / ``late-seed0-fp16``
    for mixed precision, so that runs at another precision are never resumed nor reused."""
    return f"{name}-seed{seed}" + {"32": "", "bf16": "-bf16", "16": "-fp16"}[precision]


def check(
    base: TrainConfig,
    fusions: Sequence[str] | None = None,
    fusion_options: Mapping[str, Mapping[str, Any]] | None = None,
    seeds: Sequence[int] = (0,),
    init_from: str | Path | None = None,
    out: str | Path | None = None,
    noise_levels: Sequence[float] = NOISE_LEVELS,
) -> list[str]:
    """The rows :func:`compare` runs (``fusions``, or :func:`default_fusions` of the data's modalities),
    once every row is checked without loading any data: names, options keys, each row's run config
    (:func:`~wsfusion.train.trainer.check_config`: device, precision, the fusion's options on the data's
    shapes) and, with ``init_from``, the checkpoint there (:func:`warm_start_path`) of every row and seed
    that ``out`` does not already hold finished (:func:`finished_run`): a finished run is read back, so
    a fresh clone of a results folder, whose checkpoints are not kept, still reports and resumes.
    Raises the ``ValueError`` / ``TypeError`` of the first problem."""
    fusion_options = dict(fusion_options or {})
    modalities = list(data_layout(base)[0])
    rows = list(fusions or default_fusions(modalities))
    check_rows(rows, fusion_options, modalities)
    seeds = list(seeds) or [0]
    for name in rows:
        check_config(run_config(base, name, int(seeds[0]), row_options(name, fusion_options)))
        for seed in seeds if init_from is not None else ():
            config = warm_config(base, name, int(seed), row_options(name, fusion_options), init_from)
            run_dir = None if out is None else Path(out) / "runs" / run_name(name, int(seed), base.precision)
            if finished_run(run_dir, config, noise_levels) is None:
                warm_start_path(init_from, name, int(seed), base.precision)
    return rows


def warm_start_path(init_from: str | Path, name: str, seed: int, precision: str = "32") -> Path:
    """The checkpoint of row ``name`` and ``seed`` in the comparison folder ``init_from``; a ``ValueError`` if absent."""
    path = Path(init_from) / "runs" / run_name(name, seed, precision) / "checkpoint.pt"
    if not path.is_file():
        raise ValueError(f"compare: init_from has no checkpoint for row {name!r} seed {seed} (expected {path})")
    return path


def warm_config(base: TrainConfig, name: str, seed: int, options: Mapping[str, Any],
                init_from: str | Path | None) -> TrainConfig:
    """Row ``name``'s run config at ``seed``, started (with ``init_from``) from the same row and seed's
    checkpoint in that comparison folder, whether or not the checkpoint is there (:func:`check` asks)."""
    config = run_config(base, name, seed, options)
    if init_from is None:
        return config
    return config.replace(init_from=str(Path(init_from) / "runs" / run_name(name, seed, base.precision) / "checkpoint.pt"))


def family(name: str) -> str:
    """The row's family: its fusion's (``baseline``, ``ws``, ...), or ``unimodal`` for ``only-<m>``."""
    return "unimodal" if name.startswith(UNIMODAL_PREFIX) else fusion_registry.fusion_class(row_fusion(name)).family


def graph_summary(graph: CrossModalGraph) -> dict[str, Any]:
    """The statistics that stand beside every WS result (design §7)."""
    stats = graph.stats()
    keys = ("num_nodes", "num_edges", "cross_modal_fraction", "clustering", "path_length")
    return {k: stats[k] for k in keys} | {"k": graph.k, "beta": graph.beta, "order": graph.order}


def graph_record(graph: CrossModalGraph) -> dict[str, Any]:
    """The graph as JSON (node counts, relation vocabulary, edge index, WS metadata), kept with a run's
    evaluation so that its mask is drawn from the stored run, without building a model again."""
    return {"nodes": dict(graph.node_counts), "vocabulary": list(graph.vocabulary),
            "edge_index": graph.edge_index.tolist(), "k": graph.k, "beta": graph.beta, "seed": graph.seed,
            "order": graph.order}


def graph_from_record(record: Mapping[str, Any]) -> CrossModalGraph:
    """The graph :func:`graph_record` stored."""
    return CrossModalGraph.from_edge_index(
        record["edge_index"], record["nodes"], vocabulary=record["vocabulary"], k=record["k"], beta=record["beta"],
        seed=record["seed"], order=record["order"])


EVALUATION = "evaluation.json"
#: Bump when what an evaluation holds or how it is computed changes: older caches are then redone.
EVALUATION_VERSION = 1


def same_config(saved: dict[str, Any], config: TrainConfig) -> bool:
    """Whether a stored run's config is ``config``. Fields added to :class:`TrainConfig` after the run was
    stored take their defaults (which keep the old behaviour), so finished runs stay valid. A warm start
    (``init_from``, stored as an absolute path) is the same when it names the same comparison folder,
    run and file: the folders above them only say where a clone of the results lives."""
    try:
        stored = TrainConfig.from_dict(saved)
    except (TypeError, ValueError):
        return False
    return (stored.replace(init_from=None) == config.replace(init_from=None)
            and _warm_start_key(stored.init_from) == _warm_start_key(config.init_from))


def _warm_start_key(init_from: str | None) -> tuple[str, ...] | None:
    return None if init_from is None else Path(init_from).parts[-4:]  # <comparison>/runs/<run>/checkpoint.pt


def finished_run(run_dir: Path | None, config: TrainConfig, noise_levels: Sequence[float]
                 ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The stored evaluation and training history of a run that ``run_dir`` holds finished with ``config``
    and evaluated at ``noise_levels`` (``None`` if it does not)."""
    cache = None if run_dir is None else run_dir / EVALUATION
    if cache is None or not cache.exists() or not (run_dir / RESULT).exists():
        return None
    saved, result = json.loads(cache.read_text()), json.loads((run_dir / RESULT).read_text())
    if (saved.get("version", 1) == EVALUATION_VERSION and same_config(saved["config"], config)
            and same_config(result["config"], config) and saved["noise_levels"] == list(noise_levels)):
        return saved["evaluation"], result["history"]
    return None


def run_and_evaluate(
    config: TrainConfig,
    run_dir: Path | None,
    datasets: Sequence[Any],
    all_modalities: Sequence[str],
    noise_levels: Sequence[float],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Train one run (resuming it) and evaluate it; return its evaluation and training history.

    A finished run's evaluation is stored in ``run_dir/evaluation.json``
    beside its ``result.json``; a rerun with the same config and noise levels
    reads it back instead of evaluating again. A graph fusion's evaluation
    holds its graph's statistics (``graph``) and the graph itself
    (``graph_edges``, :func:`graph_record`; absent from evaluations stored
    before it was kept, which are still read back).
    """
    stored = finished_run(run_dir, config, noise_levels)
    if stored is not None:
        return stored
    cache = None if run_dir is None else run_dir / EVALUATION
    result, model = train(config, run_dir, resume=run_dir is not None, datasets=datasets, progress=False)
    test = select_modalities(datasets[2], config.modalities)
    used = list(test.inputs)
    clean = result["test_acc"]
    seed = config.seed
    # A modality the model does not use cannot change its output: flat curves, clean accuracy.
    robustness = {
        m: [evaluate(model, test, transform=noise_transform(m, level, 1000 + seed), precision=config.precision)["acc"]
            if m in used else clean
            for level in noise_levels]
        for m in all_modalities
    }
    evaluation = {
        "seed": seed,
        "test_acc": clean,
        "val_acc": result["val_acc"],
        "best_epoch": result["best_epoch"],
        "epochs_run": result["epochs_run"],
        "train_seconds": result["train_seconds"],
        "latency_ms": latency_ms(model, test, precision=config.precision),
        "noise_auc": float(np.mean([curve_auc(noise_levels, accs) for accs in robustness.values()])),
        "robustness": robustness,
        "missing_acc": {m: evaluate(model, test, transform=missing_transform(m), precision=config.precision)["acc"]
                        if m in used else clean for m in all_modalities},
        "fusion_params": sum(p.numel() for p in model.fusion.parameters()),
        "total_params": sum(p.numel() for p in model.parameters()),
        "graph": graph_summary(model.fusion.graph) if hasattr(model.fusion, "graph") else None,
    }
    if hasattr(model.fusion, "graph"):
        evaluation["graph_edges"] = graph_record(model.fusion.graph)
    if cache is not None:
        text = json.dumps({"version": EVALUATION_VERSION, "config": config.to_dict(),
                           "noise_levels": list(noise_levels), "evaluation": evaluation}, indent=2) + "\n"
        atomic_write_text(cache, text)
    return evaluation, result["history"]


def compare(
    base: TrainConfig,
    fusions: Sequence[str] | None = None,
    seeds: Sequence[int] = (0,),
    out: str | Path | None = None,
    *,
    fusion_options: Mapping[str, Mapping[str, Any]] | None = None,
    noise_levels: Sequence[float] = NOISE_LEVELS,
    init_from: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train every fusion with the same encoders, data, seeds and epoch budget; evaluate them alike.

    ``fusions`` are registered names, variants ``<fusion>@<variant>`` of them
    (the same fusion with other options, e.g. ``ws-transformer@bigbird`` with
    ``fusion_options={"ws-transformer@bigbird": {"topology": "bigbird"}}``, see
    :func:`row_options`) or ``only-<modality>`` unimodal rows
    (default: :func:`default_fusions`, every fusion plus one unimodal row per
    modality). Per row, over ``seeds``: test accuracy (mean, std, per seed,
    95% t-interval half-width ``test_acc_ci95``), ``vs_best_baseline`` (the
    non-WS, non-unimodal row with the best mean validation accuracy: difference
    of mean test accuracies and the two-sided paired t-test p-value over the
    same seeds, uncorrected for multiple rows) and ``p_value_holm`` (that
    p-value Holm-adjusted over every row's test), fusion-module
    and total parameters, training time, inference latency, the area under the
    accuracy-vs-noise curve (noise on one modality at a time, averaged over
    modalities), the accuracy with each modality missing, and for WS rows the
    graph's statistics. With ``out``, writes ``results.json``, ``results.md``
    and PNG plots there (:func:`~wsfusion.train.report.write_report`); each run checkpoints under ``out/runs/``, so rerunning
    the same comparison after a crash or kill continues where it stopped
    (finished runs are read back with their evaluation, not run again).
    Every run trains and is evaluated at ``base.precision``, which is part of
    its config and of its folder's name (:func:`run_name`), so a comparison
    at another precision never reuses a finished run. Every row is checked
    (:func:`check`) before any data is loaded.

    ``init_from`` (an earlier comparison's ``out``, e.g. at a shorter sequence length) starts
    every run from the final weights of the same row and seed there
    (``TrainConfig.init_from``, :func:`~wsfusion.train.checkpoint.warm_start`): a curriculum
    over the length, row by row. Every such checkpoint must exist before any run starts, except
    those of runs that ``out`` already holds finished (results folders are kept without checkpoints).
    """
    seeds = [int(s) for s in seeds]
    fusion_options = dict(fusion_options or {})
    rows, histories, plotted = [], {}, None
    fusions = check(base, fusions, fusion_options, seeds, init_from, out, noise_levels)  # before any data is loaded
    datasets_by_seed = {seed: build_datasets(base.replace(seed=seed)) for seed in seeds}
    all_modalities = list(datasets_by_seed[seeds[0]][2].inputs)
    bar = tqdm(total=len(fusions) * len(seeds), desc="compare", unit="run", disable=not progress)
    for name in fusions:
        per_seed: list[dict[str, Any]] = []
        for seed in seeds:
            bar.set_postfix(fusion=name, seed=seed)
            config = warm_config(base, name, seed, row_options(name, fusion_options), init_from)
            run_dir = None if out is None else Path(out) / "runs" / run_name(name, seed, base.precision)
            evaluation, history = run_and_evaluate(config, run_dir, datasets_by_seed[seed], all_modalities, noise_levels)
            per_seed.append(evaluation)
            if seed == seeds[0]:
                histories[name] = history
            bar.update()
        # The mask plot shows the first WS row's graph, as its first seed's run stored it.
        edges = per_seed[0].get("graph_edges")
        if plotted is None and edges is not None:
            plotted = (name, graph_from_record(edges))
        rows.append(summarize_row(name, per_seed, row_options(name, fusion_options), all_modalities))
    bar.close()
    add_paired_tests(rows)
    results = {
        "rows": rows,
        "config": {**base.to_dict(), "fusions": fusions, "seeds": seeds, "noise_levels": list(noise_levels),
                   "fusion_options": {k: dict(v) for k, v in fusion_options.items()}, "alpha": ALPHA},
        "histories": histories,
    }
    if out is not None:
        write_report(results, Path(out), plotted)
    return results


def summarize_row(name: str, per_seed: list[dict[str, Any]], options: Mapping[str, Any],
                  modalities: Sequence[str]) -> dict[str, Any]:
    """Row ``name`` of ``results.json`` from its runs' evaluations (one a seed, in seed order): test accuracy
    (mean, std, per seed, 95% t-interval), the means of the other columns, the first seed's graph
    statistics for a WS row, and the evaluations themselves (without their graphs) under ``seeds``."""
    accs = [r["test_acc"] for r in per_seed]
    acc, acc_std = mean_std(accs)
    graph = per_seed[0]["graph"]
    for evaluation in per_seed:
        evaluation.pop("graph")
        evaluation.pop("graph_edges", None)
    row = {
        "fusion": name,
        "family": family(name),
        "options": dict(options),
        "test_acc": acc,
        "test_acc_std": acc_std,
        "test_acc_per_seed": accs,
        "test_acc_ci95": ci95(accs),
        "val_acc": float(np.mean([r["val_acc"] for r in per_seed])),
        "fusion_params": per_seed[0]["fusion_params"],
        "total_params": per_seed[0]["total_params"],
        "train_seconds": float(np.mean([r["train_seconds"] for r in per_seed])),
        "latency_ms": float(np.mean([r["latency_ms"] for r in per_seed])),
        "noise_auc": float(np.mean([r["noise_auc"] for r in per_seed])),
        "missing_acc": {m: float(np.mean([r["missing_acc"][m] for r in per_seed])) for m in modalities},
        "seeds": per_seed,
    }
    if graph is not None:
        row["graph"] = graph
    return row


def add_paired_tests(rows: list[dict[str, Any]]) -> None:
    """Set every row's ``vs_best_baseline``: the baseline row with the best mean *validation*
    accuracy (picking it on test would make the reference optimistic), compared on the same seeds
    (:func:`~wsfusion.train.stats.paired_p_value`, uncorrected), and its ``p_value_holm``: that
    p-value adjusted by :func:`~wsfusion.train.stats.holm` over the family of every row's test
    (``None`` where there is no test, as for the best baseline itself)."""
    baselines = [r for r in rows if r["family"] == "baseline"]
    if not baselines:
        return
    best = max(baselines, key=lambda r: r["val_acc"])
    for row in rows:
        delta = row["test_acc"] - best["test_acc"]
        p = None if row is best else paired_p_value(row["test_acc_per_seed"], best["test_acc_per_seed"])
        row["vs_best_baseline"] = {"fusion": best["fusion"], "delta": delta, "p_value": p}
    for row, adjusted in zip(rows, holm([r["vs_best_baseline"]["p_value"] for r in rows])):
        row["p_value_holm"] = adjusted
