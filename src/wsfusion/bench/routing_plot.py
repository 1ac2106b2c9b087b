"""The routing benchmark's figure: accuracy per topology against length, and the cost of a step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wsfusion.bench.routing_task import REWIRED, TOPOLOGIES


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
