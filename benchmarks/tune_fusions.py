"""Equal tuning effort (issue 9): every fusion's main option chosen on the *validation* split.

Each fusion gets a grid of the same size (two values of one main option,
``GRID``); every grid point is one ``wsfusion compare`` over all fusions on
the tuning seeds, with the evaluation budget. The choice per fusion is the
grid value with the best mean validation accuracy; test accuracy is recorded
but never used. Writes ``OUT/point<i>/`` (resumable compare folders) and
``OUT/chosen.json`` (grid, validation accuracies, choice), which
``wsfusion compare --fusion-options OUT/chosen.json`` reads.

    python benchmarks/tune_fusions.py --points 0        # one process per grid point,
    python benchmarks/tune_fusions.py --points 1        # in parallel on two cores
    python benchmarks/tune_fusions.py --summarise       # write chosen.json and print the table
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from wsfusion.bench._measure import format_table
from wsfusion.train import TrainConfig
from wsfusion.train.compare import compare

#: Two values of one main option per fusion: the same grid size for every fusion.
GRID: dict[str, dict[str, list[object]]] = {
    "early": {"hidden_dim": [128, 256]},
    "late": {"hidden_dim": [64, 128]},
    "hybrid": {"hidden_dim": [64, 128]},
    "attention": {"embed_dim": [64, 128]},
    "transformer": {"num_layers": [1, 2]},
    "tensor": {"proj_dim": [8, 16]},
    "low-rank": {"rank": [4, 16]},
    "ws-dense": {"k": [4, 8]},
    "ws-sparse": {"k": [4, 8]},
    "ws-gnn": {"conv": ["rgcn", "attention"]},
    "ws-transformer": {"num_layers": [1, 2]},
}
GRID_SIZE = 2

#: The evaluation regime (README Results): AV-digits hard, 20 epochs, cosine to zero, no early stop.
BASE = TrainConfig(data="av-digits", hard=True, epochs=20, patience=None)


def point_options(i: int) -> dict[str, dict[str, object]]:
    return {f: {opt: values[i] for opt, values in grid.items()} for f, grid in GRID.items()}


def plot_curves(points: list[dict], path: Path) -> None:
    """Validation accuracy per epoch of every fusion at every grid point: has the budget converged?"""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, 8))
    for j, fusion in enumerate(GRID):
        ax = fig.add_subplot(3, 4, j + 1)
        for i, point in enumerate(points):
            history = point["histories"][fusion]
            label = ", ".join(f"{k}={v[i]}" for k, v in GRID[fusion].items())
            ax.plot([h["epoch"] for h in history], [h["val_acc"] for h in history], marker="o", ms=2, label=label)
        ax.set(title=fusion, xlabel="epoch", ylabel="val acc", ylim=(0.3, 0.9))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Validation accuracy per epoch (AV-digits hard, tuning seed, 20 epochs, cosine schedule)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", default=",".join(str(i) for i in range(GRID_SIZE)), help="grid points to run")
    parser.add_argument("--seeds", default="100", help="tuning seeds (never the evaluation seeds)")
    parser.add_argument("--out", default="docs/results/tuning")
    parser.add_argument("--summarise", action="store_true", help="only write chosen.json from finished points")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out)
    assert all(len(v) == GRID_SIZE for grid in GRID.values() for v in grid.values())
    if not args.summarise:
        for i in (int(p) for p in args.points.split(",")):
            compare(BASE, list(GRID), seeds, out / f"point{i}", fusion_options=point_options(i), progress=False)
    rows, chosen, val = [], {}, {}
    points = [json.loads((out / f"point{i}" / "results.json").read_text()) for i in range(GRID_SIZE)]
    for fusion in GRID:
        accs = [next(r for r in p["rows"] if r["fusion"] == fusion) for p in points]
        best = max(range(GRID_SIZE), key=lambda i: accs[i]["val_acc"])  # ties: the first (smaller) value
        chosen[fusion] = point_options(best)[fusion]
        val[fusion] = [a["val_acc"] for a in accs]
        rows.append([fusion, ", ".join(f"{k}={v}" for k, v in GRID[fusion].items()),
                     " / ".join(f"{a['val_acc']:.3f}" for a in accs), json.dumps(chosen[fusion]),
                     " / ".join(f"{a['test_acc']:.3f}" for a in accs)])
    summary = {"seeds": seeds, "config": BASE.to_dict(), "grid": GRID, "val_acc": val, "chosen": chosen,
               "rule": "best mean validation accuracy on the tuning seeds; test accuracy never used"}
    (out / "chosen.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_curves(points, out / "validation_curves.png")
    print(format_table(["fusion", "grid", "val acc per point", "chosen", "(test acc, not used)"], rows))


if __name__ == "__main__":
    main()
