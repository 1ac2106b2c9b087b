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
from wsfusion.train.config import TrainConfig
from wsfusion.train.trainer import build_datasets, evaluate, train

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
        return drop_modality(inputs, modality)

    return transform


@torch.no_grad()
def latency_ms(model: torch.nn.Module, dataset, batch_size: int = 64, reps: int = 10) -> float:
    """Median inference time of one batch (ms)."""
    model.eval()
    device = next(model.parameters()).device
    inputs = {m: x[:batch_size].to(device) for m, x in dataset.inputs.items()}
    model(inputs)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        model(inputs)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _auc(levels: Sequence[float], accs: Sequence[float]) -> float:
    """Area under accuracy-vs-noise-level, normalised by the level range (MultiBench-style)."""
    return float(np.trapezoid(accs, levels) / (levels[-1] - levels[0]))


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


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

    Per fusion (mean ± std over seeds): test accuracy, fusion-module and total
    parameters, training time, inference latency, the area under the
    accuracy-vs-noise curve (noise on one modality at a time, averaged over
    modalities) and the accuracy with each modality missing. With ``out``,
    writes ``results.json``, ``results.md`` and PNG plots there; each run
    checkpoints under ``out/runs/``, so rerunning the same comparison after a
    crash or kill continues where it stopped (finished runs are only
    re-evaluated).
    """
    fusions = list(fusions or fusion_registry.available())
    fusion_options = dict(fusion_options or {})
    rows, curves, histories, graphs = [], {}, {}, {}
    bar = tqdm(total=len(fusions) * len(seeds), desc="compare", unit="run", disable=not progress)
    datasets_by_seed = {seed: build_datasets(base.replace(seed=seed)) for seed in seeds}
    for name in fusions:
        per_seed: list[dict[str, Any]] = []
        for seed in seeds:
            bar.set_postfix(fusion=name, seed=seed)
            config = base.replace(fusion=name, seed=seed, fusion_options=dict(fusion_options.get(name, {})))
            datasets = datasets_by_seed[seed]
            run_dir = None if out is None else Path(out) / "runs" / f"{name}-seed{seed}"
            # resume=True: rerunning the same command continues unfinished runs and re-evaluates finished ones.
            result, model = train(config, run_dir, resume=run_dir is not None, datasets=datasets, progress=False)
            test = datasets[2]
            modalities = list(test.inputs)
            robustness = {
                m: [evaluate(model, test, transform=noise_transform(m, level, 1000 + seed))["acc"] for level in noise_levels]
                for m in modalities
            }
            per_seed.append({
                "test_acc": result["test_acc"],
                "train_seconds": result["train_seconds"],
                "latency_ms": latency_ms(model, test),
                "noise_auc": float(np.mean([_auc(noise_levels, accs) for accs in robustness.values()])),
                "robustness": robustness,
                "missing_acc": {m: evaluate(model, test, transform=missing_transform(m))["acc"] for m in modalities},
                "fusion_params": sum(p.numel() for p in model.fusion.parameters()),
                "total_params": sum(p.numel() for p in model.parameters()),
                "epochs_run": result["epochs_run"],
            })
            if seed == seeds[0]:
                histories[name] = result["history"]
                if hasattr(model.fusion, "graph"):
                    graphs[name] = model.fusion.graph
            bar.update()
        acc, acc_std = _mean_std([r["test_acc"] for r in per_seed])
        modalities = list(per_seed[0]["missing_acc"])
        rows.append({
            "fusion": name,
            "test_acc": acc,
            "test_acc_std": acc_std,
            "fusion_params": per_seed[0]["fusion_params"],
            "total_params": per_seed[0]["total_params"],
            "train_seconds": float(np.mean([r["train_seconds"] for r in per_seed])),
            "latency_ms": float(np.mean([r["latency_ms"] for r in per_seed])),
            "noise_auc": float(np.mean([r["noise_auc"] for r in per_seed])),
            "missing_acc": {m: float(np.mean([r["missing_acc"][m] for r in per_seed])) for m in modalities},
            "seeds": per_seed,
        })
        curves[name] = {m: np.mean([r["robustness"][m] for r in per_seed], axis=0).tolist() for m in modalities}
    bar.close()
    results = {
        "rows": rows,
        "config": {**base.to_dict(), "fusions": fusions, "seeds": list(seeds), "noise_levels": list(noise_levels),
                   "fusion_options": {k: dict(v) for k, v in fusion_options.items()}},
        "histories": histories,
    }
    if out is not None:
        write_report(results, curves, graphs, Path(out))
    return results


def results_markdown(results: dict[str, Any]) -> str:
    rows = results["rows"]
    modalities = list(rows[0]["missing_acc"]) if rows else []
    seeds = len(results["config"]["seeds"])
    head = ["fusion", f"test acc ({seeds} seed{'s' if seeds > 1 else ''})", "fusion params", "total params",
            "train s", "latency ms", "noise AUC", *(f"{m} missing" for m in modalities)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        acc = f"{r['test_acc']:.3f} ± {r['test_acc_std']:.3f}" if seeds > 1 else f"{r['test_acc']:.3f}"
        cells = [f"`{r['fusion']}`", acc, f"{r['fusion_params']:,}", f"{r['total_params']:,}", f"{r['train_seconds']:.0f}",
                 f"{r['latency_ms']:.2f}", f"{r['noise_auc']:.3f}", *(f"{r['missing_acc'][m]:.3f}" for m in modalities)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(
    results: dict[str, Any], curves: dict[str, dict[str, list[float]]], graphs: Mapping[str, Any], out: Path
) -> None:
    """``results.json``, ``results.md``, and training-curve, robustness and WS-mask PNGs."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    config = results["config"]
    title = f"{config['data']}{' (hard)' if config['hard'] else ''}, {config['epochs']} epochs"
    (out / "results.md").write_text(f"# wsfusion compare: {title}\n\n" + results_markdown(results))

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
