"""Train one fusion on AV-digits (MNIST images paired with spoken-digit MFCCs) and report test accuracy.

    python examples/train_av_digits.py --fusion ws-gnn --epochs 10 [--hard] [--out runs/av]

The same as `wsfusion train --data av-digits ...`; kill it and rerun with --resume to continue.
"""

from __future__ import annotations

import argparse

from wsfusion.train import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fusion", default="ws-gnn")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--hard", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()

    config = TrainConfig(data="av-digits", hard=args.hard, fusion=args.fusion, epochs=args.epochs, seed=args.seed)
    result, model = train(config, args.out, resume=args.resume)
    fusion_params = sum(p.numel() for p in model.fusion.parameters())
    print(f"{args.fusion}: test accuracy {result['test_acc']:.3f} (best epoch {result['best_epoch']}, "
          f"{fusion_params:,} fusion parameters, {result['train_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
