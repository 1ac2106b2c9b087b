"""What ``compare`` writes: ``results.json``, ``results.md`` and PNG plots, every file atomically.

The tables are built here from a results dict (what ``results.json`` holds) and nothing else, so
``results.md``, the ``wsfusion compare`` printout and the README tables (``benchmarks/results_tables.py``)
are the same text for the same results. The numbers in them come from :mod:`wsfusion.train.stats`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wsfusion._io import atomic_write, atomic_write_text
from wsfusion.train.stats import verdict

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from wsfusion.graphs import CrossModalGraph

__all__ = ["rows_table", "graphs_table", "results_markdown", "line_styles", "training_curves_figure",
           "robustness_figure", "write_report"]

#: Line colours, cycled; past the tenth row the line style changes, and the marker cycles on its own,
#: so that no two rows of a plot look alike (unique up to 280 rows).
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf")
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def _seeds(row: dict[str, Any]) -> int:
    return len(row["test_acc_per_seed"])


def _versus(row: dict[str, Any]) -> str:
    vs = row.get("vs_best_baseline")
    if vs is None:
        return "—"
    if vs["fusion"] == row["fusion"]:
        return "best baseline"
    p = "" if vs["p_value"] is None else f", p = {vs['p_value']:.3f}"
    return f"{verdict(vs['delta'], vs['p_value'])} ({vs['delta']:+.3f}{p})"


def rows_table(results: dict[str, Any], label: str | None = None) -> str:
    """The Markdown table of every row: accuracy (mean ± std over seeds, the 95% t-interval), the verdict
    against the best baseline (paired t-test, uncorrected) and its Holm-adjusted p-value over all the
    rows' tests, parameters, costs, noise AUC and missing-modality accuracies. ``label`` (e.g. the
    results folder's name) goes into the accuracy column's header, which then names the table."""
    rows = results["rows"]
    modalities = list(rows[0]["missing_acc"]) if rows else []
    most = max((_seeds(r) for r in rows), default=len(results["config"]["seeds"]))
    what = f"{label}, " if label else ""
    head = ["fusion", f"test acc ({what}{most} seed{'s' if most > 1 else ''})", "95% CI",
            "vs best baseline (paired t-test)", "Holm-adjusted p", "fusion params", "total params", "train s",
            "latency ms", "noise AUC", *(f"{m} missing" for m in modalities)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        n, mean, half = _seeds(r), r["test_acc"], r.get("test_acc_ci95")
        acc = (f"{mean:.3f} ± {r['test_acc_std']:.3f}" if n > 1 else f"{mean:.3f}") + ("" if n == most else f" ({n} seeds)")
        ci = "—" if n < 2 or half is None else f"[{mean - half:.3f}, {mean + half:.3f}]"
        holm = "—" if r.get("p_value_holm") is None else f"{r['p_value_holm']:.3f}"
        cells = [f"`{r['fusion']}`", acc, ci, _versus(r), holm, f"{r['fusion_params']:,}", f"{r['total_params']:,}",
                 f"{r['train_seconds']:.0f}", f"{r['latency_ms']:.2f}", f"{r['noise_auc']:.3f}",
                 *(f"{r['missing_acc'][m]:.3f}" for m in modalities)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def graphs_table(rows: Sequence[dict[str, Any]]) -> str:
    """The Markdown table of the WS rows' graph statistics (design §7), or ``""`` without WS rows."""
    graph_rows = [r for r in rows if r.get("graph")]
    if not graph_rows:
        return ""
    lines = ["| WS fusion | graph | nodes | edges | cross-modal fraction | clustering | avg path length |",
             "|---|---|---|---|---|---|---|"]
    for r in graph_rows:
        g = r["graph"]
        path, cross, clustering = (
            "—" if g[key] is None else f"{g[key]:.{digits}f}"
            for key, digits in (("path_length", 2), ("cross_modal_fraction", 3), ("clustering", 3))
        )
        lines.append(f"| `{r['fusion']}` | k={g['k']}, beta={g['beta']}, {g['order']} | {g['num_nodes']} | "
                     f"{g['num_edges']} | {cross} | {clustering} | {path} |")
    return "\n".join(lines)


def results_markdown(results: dict[str, Any]) -> str:
    """:func:`rows_table`, and :func:`graphs_table` below it where there are WS rows."""
    graphs = graphs_table(results["rows"])
    return rows_table(results) + "\n" + (f"\n{graphs}\n" if graphs else "")


def line_styles(names: Sequence[str]) -> dict[str, dict[str, str]]:
    """``{name: {"color", "linestyle", "marker"}}``: a distinct combination for every name, in order."""
    return {name: {"color": COLORS[i % len(COLORS)], "linestyle": LINESTYLES[i // len(COLORS) % len(LINESTYLES)],
                   "marker": MARKERS[i % len(MARKERS)]}
            for i, name in enumerate(names)}


def _title(config: dict[str, Any]) -> str:
    precision = config.get("precision", "32")
    return (f"{config['data']}{' (hard)' if config['hard'] else ''}, {config['epochs']} epochs"
            + ("" if precision == "32" else f", precision {precision}"))


def _figure(figsize: tuple[float, float]) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def training_curves_figure(results: dict[str, Any]) -> Figure:
    """Validation accuracy per epoch of every row's first seed, one distinct line a row."""
    histories = results["histories"]
    styles = line_styles([r["fusion"] for r in results["rows"]])
    fig = _figure((7, 4.5))
    ax = fig.add_subplot()
    for name, history in histories.items():
        ax.plot([h["epoch"] for h in history], [h["val_acc"] for h in history], ms=3, label=name, **styles[name])
    ax.set(xlabel="epoch", ylabel="validation accuracy",
           title=f"Training curves ({_title(results['config'])}, first seed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def robustness_curves(results: dict[str, Any]) -> dict[str, dict[str, list[float]]]:
    """``{row: {modality: test accuracy per noise level}}``, each the mean over the row's seeds."""
    return {r["fusion"]: {m: np.mean([s["robustness"][m] for s in r["seeds"]], axis=0).tolist()
                          for m in r["seeds"][0]["robustness"]}
            for r in results["rows"]}


def robustness_figure(results: dict[str, Any]) -> Figure:
    """Test accuracy against the noise level on each modality (one panel a modality, one line a row)."""
    curves = robustness_curves(results)
    levels = results["config"]["noise_levels"]
    styles = line_styles(list(curves))
    modalities = list(next(iter(curves.values()))) if curves else []
    fig = _figure((5 * max(len(modalities), 1), 4.2))
    for i, m in enumerate(modalities):
        ax = fig.add_subplot(1, len(modalities), i + 1)
        for name, per_modality in curves.items():
            ax.plot(levels, per_modality[m], ms=3, label=name, **styles[name])
        ax.set(xlabel=f"noise level on {m}", ylabel="test accuracy", title=f"Robustness to {m} noise")
        ax.grid(alpha=0.3)
    if modalities:
        fig.axes[-1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def _save_png(fig: Figure, path: Path, dpi: int) -> None:
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi))


def write_report(results: dict[str, Any], out: str | Path, graph: tuple[str, CrossModalGraph] | None = None) -> None:
    """Write ``results.json``, ``results.md``, ``training_curves.png``, ``robustness.png`` and, given
    ``graph = (row name, its graph)``, ``ws_mask.png`` into ``out``; each file atomically (a reader, or a
    kill mid-write, sees the old file or the new one). Needs only ``results`` (and the graph), so a
    stored ``results.json`` can be reported again without training anything."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(out / "results.md", f"# wsfusion compare: {_title(results['config'])}\n\n"
                      + results_markdown(results))
    _save_png(training_curves_figure(results), out / "training_curves.png", dpi=120)
    _save_png(robustness_figure(results), out / "robustness.png", dpi=120)
    if graph is not None:
        from wsfusion.graphs import plot_mask

        name, g = graph
        _save_png(plot_mask(g, title=f"{name}: {g!r}"[:90]), out / "ws_mask.png", dpi=150)
