"""Encoder pooling study (issue 9): how should an encoder turn its tokens into the pooled vector?

For each pooling rule (``mean`` of the tokens, a linear projection of the
``flatten``-ed token grid/sequence, learned ``attention`` pooling) it trains
image only, audio only and their concatenation (``early``) on AV-digits hard
with ``wsfusion compare`` (same seeds, data and budget), then prints JSON and a
table of validation and test accuracy. The default pool is chosen on the
*validation* accuracy of the concatenation. Resumable: rerun to continue.

    python benchmarks/encoder_pooling.py --seeds 100,101,102 --epochs 20 --out docs/results/pooling
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from wsfusion.bench._measure import format_table
from wsfusion.encoders import POOLS
from wsfusion.train import TrainConfig
from wsfusion.train.compare import compare

ROWS = ("only-visual", "only-audio", "early")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="100,101,102", help="comma-separated seeds (default: 100,101,102)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--hard", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--out", default="docs/results/pooling")
    parser.add_argument("--pools", default=",".join(POOLS), help="comma-separated subset of the pools")
    parser.add_argument("--summarise", action="store_true", help="only summarise finished pools")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    base = TrainConfig(data="av-digits", hard=args.hard, epochs=args.epochs, patience=None)
    summary = []
    for pool in args.pools.split(","):
        if args.summarise:
            results = json.loads((Path(args.out) / pool / "results.json").read_text())
        else:
            results = compare(base.replace(encoder_pool=pool), ROWS, seeds, Path(args.out) / pool, progress=False)
        for row in results["rows"]:
            val = [s["val_acc"] for s in row["seeds"]]
            summary.append({"pool": pool, "fusion": row["fusion"], "val_acc": float(np.mean(val)),
                            "test_acc": row["test_acc"], "test_acc_std": row["test_acc_std"],
                            "test_acc_per_seed": row["test_acc_per_seed"], "total_params": row["total_params"]})
        print(json.dumps(summary[-len(ROWS):]), flush=True)
    (Path(args.out) / "summary.json").write_text(json.dumps({"seeds": seeds, "epochs": args.epochs, "hard": args.hard,
                                                           "rows": summary}, indent=2) + "\n")
    print(format_table(["pool", "model", "val acc", "test acc", "total params"],
                       [[r["pool"], r["fusion"], f"{r['val_acc']:.3f}", f"{r['test_acc']:.3f} ± {r['test_acc_std']:.3f}",
                         f"{r['total_params']:,}"] for r in summary]))


if __name__ == "__main__":
    main()
