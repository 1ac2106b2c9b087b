"""Markdown tables for the README from a ``compare`` results.json (the Results section is pasted from this).

    python benchmarks/results_tables.py docs/results/hard/results.json

The rows table's header names the part (``| fusion | test acc (hard) | ...``), so each part's table
can be found, and checked against its results.json, by ``tests/test_readme.py``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def verdict(row: dict) -> str:
    vs = row.get("vs_best_baseline")
    if vs is None or vs.get("p_value") is None:
        return "best baseline" if vs and vs["fusion"] == row["fusion"] else "-"
    if vs["fusion"] == row["fusion"]:
        return "best baseline"
    delta, p = vs["delta"], vs["p_value"]
    words = "no significant difference" if p >= 0.05 else ("better" if delta > 0 else "worse")
    return f"{words} ({delta:+.3f}, p = {p:.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    args = parser.parse_args()
    part = args.results.parent.name
    data = json.loads(args.results.read_text())
    rows = data["rows"]
    modalities = list(rows[0]["missing_acc"])
    most = max(len(r["test_acc_per_seed"]) for r in rows)
    print(f"| fusion | test acc ({part}, {most} seeds) | 95% CI | vs best baseline (paired t-test) | fusion params | total params | train s "
          "| latency ms | noise AUC | " + " | ".join(f"{m} missing" for m in modalities) + " |")
    print("|---" * (9 + len(modalities)) + "|")
    for r in rows:
        n = len(r["test_acc_per_seed"])
        seeds_text = "" if n == most else f" ({n} seeds)"
        mean, std, ci = r["test_acc"], r["test_acc_std"], r.get("test_acc_ci95")
        ci_text = "-" if ci is None or n < 2 else f"[{mean - ci:.3f}, {mean + ci:.3f}]"
        print(f"| `{r['fusion']}` | {mean:.3f} ± {std:.3f}{seeds_text} | {ci_text} | {verdict(r)} | {r['fusion_params']:,} "
              f"| {r['total_params']:,} | {r['train_seconds']:.0f} | {r['latency_ms']:.2f} | {r['noise_auc']:.3f} | "
              + " | ".join(f"{r['missing_acc'][m]:.3f}" for m in modalities) + " |")
    graphs = [r for r in rows if r.get("graph")]
    if graphs:
        print()
        print("| WS fusion | graph | nodes | edges | cross-modal fraction | clustering | avg path length |")
        print("|---|---|---|---|---|---|---|")
        for r in graphs:
            g = r["graph"]
            print(f"| `{r['fusion']}` | k={g['k']}, beta={g['beta']}, {g['order']} | {g['num_nodes']} | {g['num_edges']} "
                  f"| {g['cross_modal_fraction']:.3f} | {g['clustering']:.3f} | {g['path_length']:.2f} |")


if __name__ == "__main__":
    main()
