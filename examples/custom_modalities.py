"""Plug your own two encoders into WSGraphFusion and train it with a plain PyTorch loop.

A toy task with two modalities (a 12-d sensor vector and a 5-step sequence of
8-d readings) whose label needs both. Your encoders only need to return
[B, D] (pooled) features; WSGraphFusion turns each modality into `segments`
graph nodes and fuses them over a Watts-Strogatz graph.

    python examples/custom_modalities.py [--steps 200]
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from wsfusion.fusion import WSGraphFusion
from wsfusion.models import MultiModalNetwork


class SensorEncoder(nn.Module):
    out_dim = 32

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, self.out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SequenceEncoder(nn.Module):
    out_dim = 32

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(8, self.out_dim, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(x)[1][-1]


def make_data(n: int, generator: torch.Generator) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    sensor = torch.randn(n, 12, generator=generator)
    sequence = torch.randn(n, 5, 8, generator=generator)
    # The label is the sign agreement of one feature from each modality: neither alone predicts it.
    labels = ((sensor[:, 0] > 0) == (sequence[:, :, 0].mean(1) > 0)).long()
    return {"sensor": sensor, "sequence": sequence}, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()

    torch.manual_seed(0)
    encoders = {"sensor": SensorEncoder(), "sequence": SequenceEncoder()}
    fusion = WSGraphFusion({m: e.out_dim for m, e in encoders.items()}, out_dim=16,
                           segments=4, node_dim=16, conv="attention", heads=2, k=2, beta=0.3)
    model = MultiModalNetwork(encoders, fusion, head=nn.Linear(16, 2))
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(args.steps):
        inputs, labels = make_data(64, generator)
        loss = nn.functional.cross_entropy(model(inputs), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    inputs, labels = make_data(1000, generator)
    with torch.no_grad():
        accuracy = (model(inputs).argmax(-1) == labels).float().mean().item()
    print(f"graph: {fusion.graph!r}")
    print(f"accuracy on held-out data: {accuracy:.3f} (chance 0.5), final training loss {loss.item():.3f}")


if __name__ == "__main__":
    main()
