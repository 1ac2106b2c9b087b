"""Quick start: the notebook's three modalities, every fusion strategy, a few training steps.

Synthetic data with the notebook's shapes (visual [3, 32, 32], text [20, 128],
audio [1, 64, 100]): each class adds a fixed random pattern to every modality.
It only shows the pieces working together; real comparisons use `wsfusion compare`.

    python examples/quickstart.py [--steps 20] [--fusions early,late,ws-dense]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn
from tqdm import tqdm

from wsfusion import fusion
from wsfusion.encoders import default_encoders
from wsfusion.models import MultiModalNetwork

SHAPES = {"visual": (3, 32, 32), "text": (20, 128), "audio": (1, 64, 100)}


def synthetic_batch(patterns: dict[str, torch.Tensor], batch: int, generator: torch.Generator):
    labels = torch.randint(0, len(next(iter(patterns.values()))), (batch,), generator=generator)
    inputs = {
        m: p[labels] + torch.randn(batch, *SHAPES[m], generator=generator) for m, p in patterns.items()
    }
    return inputs, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--fusions", default=",".join(fusion.available()))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    generator = torch.Generator().manual_seed(args.seed)
    patterns = {m: 0.5 * torch.randn(args.classes, *s, generator=generator) for m, s in SHAPES.items()}
    eval_inputs, eval_labels = synthetic_batch(patterns, 256, generator)

    rows = []
    names = args.fusions.split(",")
    progress = tqdm(total=len(names) * args.steps, desc="training", unit="step")
    for name in names:
        torch.manual_seed(args.seed)
        encoders = default_encoders()
        model = MultiModalNetwork(encoders, fusion.build(name, {m: 256 for m in encoders}, 256), nn.Linear(256, args.classes))
        optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
        data = torch.Generator().manual_seed(args.seed + 1)
        start = time.perf_counter()
        for _ in range(args.steps):
            inputs, labels = synthetic_batch(patterns, args.batch, data)
            loss = nn.functional.cross_entropy(model(inputs), labels)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            progress.set_postfix(fusion=name, loss=f"{loss.item():.3f}")
            progress.update()
        model.eval()
        with torch.no_grad():
            accuracy = (model(eval_inputs).argmax(-1) == eval_labels).float().mean().item()
        rows.append((name, sum(p.numel() for p in model.fusion.parameters()), loss.item(), accuracy, time.perf_counter() - start))
    progress.close()

    print(f"\n{'fusion':12s} {'fusion params':>14s} {'last loss':>10s} {'accuracy':>9s} {'seconds':>8s}")
    for name, params, loss, accuracy, seconds in rows:
        print(f"{name:12s} {params:14,d} {loss:10.3f} {accuracy:9.3f} {seconds:8.1f}")


if __name__ == "__main__":
    main()
