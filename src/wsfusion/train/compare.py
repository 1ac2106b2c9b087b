"""``wsfusion compare``: every fusion on the same data, seeds and budget, with robustness and missing-modality tests."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from wsfusion import fusion as fusion_registry
from wsfusion._io import atomic_write, atomic_write_text
from wsfusion.train.config import TrainConfig
from wsfusion.train.trainer import (
    RESULT,
    autocast,
    build_datasets,
    model_for,
    check_config,
    data_layout,
    evaluate,
    input_masks,
    select_modalities,
    train,
)

NOISE_LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)


def noise_transform(modality: str, level: float, seed: int):
    """Gaussian noise on one modality, drawn identically for every model (same seed, same batch order)."""
    from wsfusion.data import gaussian_noise

    generator = torch.Generator().manual_seed(seed)

    def transform(inputs, index):
        return gaussian_noise(inputs, {modality: level}, generator=generator), None

    return transform


def missing_transform(modality: str):
    """The modality is missing for every sample: zeroed input and a False mask (each fusion's own handling)."""
    from wsfusion.data import drop_modality

    def transform(inputs, index):
        if set(inputs) == {modality}:  # a unimodal model without its modality: nothing left to see
            x = inputs[modality]
            return {modality: torch.zeros_like(x)}, {modality: torch.zeros(x.shape[0], dtype=torch.bool)}
        return drop_modality(inputs, modality)

    return transform


@torch.no_grad()
def latency_ms(model: torch.nn.Module, dataset, batch_size: int = 64, reps: int = 10, precision: str = "32") -> float:
    """Median inference time of one batch (ms), under the run's ``precision``."""
    model.eval()
    device = next(model.parameters()).device
    inputs = {m: x[:batch_size].to(device) for m, x in dataset.inputs.items()}
    padding = {m: v[:batch_size].to(device) for m, v in input_masks(dataset).items()}
    with autocast(device, precision):
        model(inputs, None, padding)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        with autocast(device, precision):
            model(inputs, None, padding)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _auc(levels: Sequence[float], accs: Sequence[float]) -> float:
    """Area under accuracy-vs-noise-level, normalised by the level range (MultiBench-style)."""
    return float(np.trapezoid(accs, levels) / (levels[-1] - levels[0]))


UNIMODAL_PREFIX = "only-"
#: Two-sided significance level of the paired test behind the verdicts in ``results.md``.
ALPHA = 0.05


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def ci95(values: Sequence[float]) -> float:
    """Half-width of the two-sided 95% t-interval of the mean (0 for a single value)."""
    from scipy import stats

    n = len(values)
    if n < 2:
        return 0.0
    return float(stats.t.ppf(0.975, n - 1) * np.std(values, ddof=1) / np.sqrt(n))


def paired_p_value(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided paired t-test p-value of ``a`` against ``b`` (same seeds), uncorrected for the
    number of rows compared. 1.0 for identical results; ``None`` where the test is undefined
    (one seed, or the same non-zero difference on every seed)."""
    from scipy import stats

    differences = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if len(differences) < 2:
        return None
    if not differences.any():
        return 1.0
    if np.ptp(differences) == 0:
        return None
    return float(stats.ttest_rel(a, b).pvalue)


def verdict(delta: float, p_value: float | None) -> str:
    """``better`` / ``worse`` (paired test at :data:`ALPHA`), ``no significant difference``, or
    ``no paired test`` where the test is undefined."""
    if p_value is None:
        return "no paired test"
    if p_value < ALPHA:
        return "better" if delta > 0 else "worse"
    return "no significant difference"


def default_fusions(modalities: Sequence[str]) -> list[str]:
    """Every registered fusion (but ``unimodal``) and an ``only-<m>`` row per modality."""
    names = [n for n in fusion_registry.available() if fusion_registry.fusion_class(n).family != "unimodal"]
    return names + [f"{UNIMODAL_PREFIX}{m}" for m in modalities]


def run_config(base: TrainConfig, name: str, seed: int, options: Mapping[str, Any]) -> TrainConfig:
    """The run of row ``name``: a fusion, or ``only-<m>`` (that modality's encoder and the same head)."""
    if name.startswith(UNIMODAL_PREFIX):
        return base.replace(fusion="unimodal", modalities=[name[len(UNIMODAL_PREFIX):]], seed=seed,
                            fusion_options=dict(options))
    if fusion_registry.fusion_class(name).family == "unimodal":
        raise ValueError(f"compare: name a unimodal row by its modality, {UNIMODAL_PREFIX}<modality>, not {name!r}")
    return base.replace(fusion=name, seed=seed, fusion_options=dict(options))


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
            fusion_registry.fusion_class(name)  # an options key that is no fusion is a typo


def run_name(name: str, seed: int, precision: str = "32") -> str:
    """The folder of one run under ``out/runs/``: ``late-seed0``, and ``late-seed0-bf16`` / ``late-seed0-fp16``
    for mixed precision, so that runs at another precision are never resumed nor reused."""
    return f"{name}-seed{seed}" + {"32": "", "bf16": "-bf16", "16": "-fp16"}[precision]


def check(
    base: TrainConfig,
    fusions: Sequence[str] | None = None,
    fusion_options: Mapping[str, Mapping[str, Any]] | None = None,
    seeds: Sequence[int] = (0,),
) -> list[str]:
    """The rows :func:`compare` runs (``fusions``, or :func:`default_fusions` of the data's modalities),
    once every row is checked without loading any data: names, options keys, and each row's run config
    (:func:`~wsfusion.train.trainer.check_config`: device, precision, the fusion's options on the data's
    shapes). Raises the ``ValueError`` / ``TypeError`` of the first problem."""
    fusion_options = dict(fusion_options or {})
    modalities = list(data_layout(base)[0])
    rows = list(fusions or default_fusions(modalities))
    check_rows(rows, fusion_options, modalities)
    seeds = list(seeds) or [0]
    for name in rows:
        check_config(run_config(base, name, int(seeds[0]), fusion_options.get(name, {})))
    return rows


def family(name: str) -> str:
    return "unimodal" if name.startswith(UNIMODAL_PREFIX) else fusion_registry.fusion_class(name).family


def graph_summary(graph: Any) -> dict[str, Any]:
    """The statistics that stand beside every WS result (design §7)."""
    stats = graph.stats()
    keys = ("num_nodes", "num_edges", "cross_modal_fraction", "clustering", "path_length")
    return {k: stats[k] for k in keys} | {"k": graph.k, "beta": graph.beta, "order": graph.order}


EVALUATION = "evaluation.json"
#: Bump when what an evaluation holds or how it is computed changes: older caches are then redone.
EVALUATION_VERSION = 1


def same_config(saved: dict[str, Any], config: TrainConfig) -> bool:
    """Whether a stored run's config is ``config``. Fields added to :class:`TrainConfig` after the run was
    stored take their defaults (which keep the old behaviour), so finished runs stay valid."""
    try:
        return TrainConfig.from_dict(saved) == config
    except (TypeError, ValueError):
        return False


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
    reads it back instead of evaluating again.
    """
    cache = None if run_dir is None else run_dir / EVALUATION
    if cache is not None and cache.exists() and (run_dir / RESULT).exists():
        saved, result = json.loads(cache.read_text()), json.loads((run_dir / RESULT).read_text())
        if (saved.get("version", 1) == EVALUATION_VERSION and same_config(saved["config"], config)
                and same_config(result["config"], config) and saved["noise_levels"] == list(noise_levels)):
            return saved["evaluation"], result["history"]
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
        "noise_auc": float(np.mean([_auc(noise_levels, accs) for accs in robustness.values()])),
        "robustness": robustness,
        "missing_acc": {m: evaluate(model, test, transform=missing_transform(m), precision=config.precision)["acc"]
                        if m in used else clean for m in all_modalities},
        "fusion_params": sum(p.numel() for p in model.fusion.parameters()),
        "total_params": sum(p.numel() for p in model.parameters()),
        "graph": graph_summary(model.fusion.graph) if hasattr(model.fusion, "graph") else None,
    }
    if cache is not None:
        text = json.dumps({"version": EVALUATION_VERSION, "config": config.to_dict(),
                           "noise_levels": list(noise_levels), "evaluation": evaluation}, indent=2) + "\n"
        atomic_write(cache, lambda f: f.write(text.encode()))
    return evaluation, result["history"]


def compare(
    base: TrainConfig,
    fusions: Sequence[str] | None = None,
    seeds: Sequence[int] = (0,),
    out: str | Path | None = None,
    *,
    fusion_options: Mapping[str, Mapping[str, Any]] | None = None,
    noise_levels: Sequence[float] = NOISE_LEVELS,
    progress: bool = True,
) -> dict[str, Any]:
    """Train every fusion with the same encoders, data, seeds and epoch budget; evaluate them alike.

    ``fusions`` are registered names or ``only-<modality>`` unimodal rows
    (default: :func:`default_fusions`, every fusion plus one unimodal row per
    modality). Per row, over ``seeds``: test accuracy (mean, std, per seed,
    95% t-interval half-width ``test_acc_ci95``), ``vs_best_baseline`` (the
    non-WS, non-unimodal row with the best mean validation accuracy: difference
    of mean test accuracies and the two-sided paired t-test p-value over the
    same seeds, uncorrected for multiple rows), fusion-module
    and total parameters, training time, inference latency, the area under the
    accuracy-vs-noise curve (noise on one modality at a time, averaged over
    modalities), the accuracy with each modality missing, and for WS rows the
    graph's statistics. With ``out``, writes ``results.json``, ``results.md``
    and PNG plots there; each run checkpoints under ``out/runs/``, so rerunning
    the same comparison after a crash or kill continues where it stopped
    (finished runs are read back with their evaluation, not run again).
    Every run trains and is evaluated at ``base.precision``, which is part of
    its config and of its folder's name (:func:`run_name`), so a comparison
    at another precision never reuses a finished run. Every row is checked
    (:func:`check`) before any data is loaded.
    """
    seeds = [int(s) for s in seeds]
    fusion_options = dict(fusion_options or {})
    rows, curves, histories, graphs = [], {}, {}, {}
    fusions = check(base, fusions, fusion_options, seeds)  # before any data is loaded
    datasets_by_seed = {seed: build_datasets(base.replace(seed=seed)) for seed in seeds}
    all_modalities = list(datasets_by_seed[seeds[0]][2].inputs)
    bar = tqdm(total=len(fusions) * len(seeds), desc="compare", unit="run", disable=not progress)
    for name in fusions:
        per_seed: list[dict[str, Any]] = []
        for seed in seeds:
            bar.set_postfix(fusion=name, seed=seed)
            config = run_config(base, name, seed, fusion_options.get(name, {}))
            run_dir = None if out is None else Path(out) / "runs" / run_name(name, seed, base.precision)
            evaluation, history = run_and_evaluate(config, run_dir, datasets_by_seed[seed], all_modalities, noise_levels)
            per_seed.append(evaluation)
            if seed == seeds[0]:
                histories[name] = history
                if evaluation["graph"] is not None:
                    graphs[name] = evaluation["graph"]
            bar.update()
        accs = [r["test_acc"] for r in per_seed]
        acc, acc_std = _mean_std(accs)
        row = {
            "fusion": name,
            "family": family(name),
            "options": dict(fusion_options.get(name, {})),
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
            "missing_acc": {m: float(np.mean([r["missing_acc"][m] for r in per_seed])) for m in all_modalities},
            "seeds": per_seed,
        }
        if name in graphs:
            row["graph"] = graphs[name]
        rows.append(row)
        curves[name] = {m: np.mean([r["robustness"][m] for r in per_seed], axis=0).tolist() for m in all_modalities}
    bar.close()
    add_paired_tests(rows)
    for r in rows:
        for seed in r["seeds"]:
            seed.pop("graph")
    results = {
        "rows": rows,
        "config": {**base.to_dict(), "fusions": fusions, "seeds": seeds, "noise_levels": list(noise_levels),
                   "fusion_options": {k: dict(v) for k, v in fusion_options.items()}, "alpha": ALPHA},
        "histories": histories,
    }
    if out is not None:
        plotted = {}
        if graphs:  # the first WS row's graph, rebuilt from its config (cheap: no training)
            name = next(iter(graphs))
            train_set = datasets_by_seed[seeds[0]][0]
            config = run_config(base, name, seeds[0], fusion_options.get(name, {}))
            plotted[name] = model_for(config, train_set.modality_shapes, train_set.num_classes).fusion.graph
        write_report(results, curves, plotted, Path(out))
    return results


def add_paired_tests(rows: list[dict[str, Any]]) -> None:
    """Set every row's ``vs_best_baseline``: the baseline row with the best mean *validation*
    accuracy (picking it on test would make the reference optimistic), compared on the same seeds."""
    baselines = [r for r in rows if r["family"] == "baseline"]
    if not baselines:
        return
    best = max(baselines, key=lambda r: r["val_acc"])
    for row in rows:
        delta = row["test_acc"] - best["test_acc"]
        p = None if row is best else paired_p_value(row["test_acc_per_seed"], best["test_acc_per_seed"])
        row["vs_best_baseline"] = {"fusion": best["fusion"], "delta": delta, "p_value": p}


def results_markdown(results: dict[str, Any]) -> str:
    rows = results["rows"]
    modalities = list(rows[0]["missing_acc"]) if rows else []
    seeds = len(results["config"]["seeds"])
    head = ["fusion", f"test acc ({seeds} seed{'s' if seeds > 1 else ''})", "95% CI", "vs best baseline (paired t-test)",
            "fusion params", "total params", "train s", "latency ms", "noise AUC",
            *(f"{m} missing" for m in modalities)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        acc = f"{r['test_acc']:.3f} ± {r['test_acc_std']:.3f}" if seeds > 1 else f"{r['test_acc']:.3f}"
        ci = f"[{r['test_acc'] - r['test_acc_ci95']:.3f}, {r['test_acc'] + r['test_acc_ci95']:.3f}]" if seeds > 1 else "—"
        cells = [f"`{r['fusion']}`", acc, ci, _versus(r), f"{r['fusion_params']:,}", f"{r['total_params']:,}",
                 f"{r['train_seconds']:.0f}", f"{r['latency_ms']:.2f}", f"{r['noise_auc']:.3f}",
                 *(f"{r['missing_acc'][m]:.3f}" for m in modalities)]
        lines.append("| " + " | ".join(cells) + " |")
    graph_rows = [r for r in rows if "graph" in r]
    if graph_rows:
        lines += ["", "| WS fusion | graph | nodes | edges | cross-modal fraction | clustering | avg path length |",
                  "|---|---|---|---|---|---|---|"]
        for r in graph_rows:
            g = r["graph"]
            path, cross, clustering = (
                "—" if g[key] is None else f"{g[key]:.{digits}f}"
                for key, digits in (("path_length", 2), ("cross_modal_fraction", 3), ("clustering", 3))
            )
            lines.append(f"| `{r['fusion']}` | k={g['k']}, beta={g['beta']}, {g['order']} | {g['num_nodes']} | "
                         f"{g['num_edges']} | {cross} | {clustering} | {path} |")
    return "\n".join(lines) + "\n"


def _versus(row: dict[str, Any]) -> str:
    vs = row.get("vs_best_baseline")
    if vs is None:
        return "—"
    if vs["fusion"] == row["fusion"]:
        return "best baseline"
    p = "" if vs["p_value"] is None else f", p = {vs['p_value']:.3f}"
    return f"{verdict(vs['delta'], vs['p_value'])} ({vs['delta']:+.3f}{p})"


def write_report(
    results: dict[str, Any], curves: dict[str, dict[str, list[float]]], graphs: Mapping[str, Any], out: Path
) -> None:
    """``results.json``, ``results.md``, and training-curve, robustness and WS-mask PNGs."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    config = results["config"]
    precision = config.get("precision", "32")
    title = (f"{config['data']}{' (hard)' if config['hard'] else ''}, {config['epochs']} epochs"
             + ("" if precision == "32" else f", precision {precision}"))
    atomic_write_text(out / "results.md", f"# wsfusion compare: {title}\n\n" + results_markdown(results))

    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    for name, history in results["histories"].items():
        ax.plot([h["epoch"] for h in history], [h["val_acc"] for h in history], marker="o", ms=3, label=name)
    ax.set(xlabel="epoch", ylabel="validation accuracy", title=f"Training curves ({title}, first seed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "training_curves.png", dpi=120)

    levels = config["noise_levels"]
    modalities = list(next(iter(curves.values()))) if curves else []
    fig = Figure(figsize=(5 * max(len(modalities), 1), 4.2))
    for i, m in enumerate(modalities):
        ax = fig.add_subplot(1, len(modalities), i + 1)
        for name, per_modality in curves.items():
            ax.plot(levels, per_modality[m], marker="o", ms=3, label=name)
        ax.set(xlabel=f"noise level on {m}", ylabel="test accuracy", title=f"Robustness to {m} noise")
        ax.grid(alpha=0.3)
    if modalities:
        fig.axes[-1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "robustness.png", dpi=120)

    if graphs:
        from wsfusion.graphs import plot_mask

        name, graph = next(iter(graphs.items()))
        plot_mask(graph, out / "ws_mask.png", title=f"{name}: {graph!r}"[:90])
