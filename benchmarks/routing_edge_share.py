"""How much of a sparse routing step is the graph's edge work, and how much is per-token dense work?

The same training step as ``run_routing.py cost`` (``RoutingModel`` on ``CrossModalRelay``),
timed interleaved twice: as is, and with the edge operations of every
:class:`~wsfusion.nn.CrossModalAttentionConv` (SDDMM scores, edge softmax, SpMM aggregation)
taken out, the query / key / value / output projections kept. The second is what a step would
cost if attention over the graph were free, so ``dense ms / no-edge-ops ms`` bounds the time
ratio to dense attention that any sparse kernel could reach with this model.

    python benchmarks/routing_edge_share.py --tokens 1024 --threads 2

Prints one JSON line; ``--out`` also writes it.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
from collections.abc import Iterator
from pathlib import Path

import torch

from wsfusion._io import atomic_write_text
from wsfusion._measure import interleaved_medians, machine
from wsfusion.bench import routing
from wsfusion.bench.routing import _training_step
from wsfusion.nn import CrossModalAttentionConv


def _projections_only(self, x_src, x_dst, *args, **kwargs):  # the signature of CrossModalAttentionConv._fused_forward
    query, key, value = self.query(x_dst), self.key(x_src), self.value(x_src)
    return self.out(value) + 0 * (query.sum() + key.sum())  # the query and key projections stay in the backward


@contextlib.contextmanager
def without_edge_ops() -> Iterator[None]:
    real = CrossModalAttentionConv._fused_forward
    CrossModalAttentionConv._fused_forward = _projections_only
    try:
        yield
    finally:
        CrossModalAttentionConv._fused_forward = real


#: The model, batch and seed of ``routing.cost`` (its defaults), so both time the same step.
COST_MODEL = {name: p.default for name, p in inspect.signature(routing.cost).parameters.items()
              if name in ("k", "layers", "width", "heads", "num_classes", "batch_size", "seed")}


def measure(tokens: int, topology: str = "ws-0.3-hub1", reps: int = 5, device: str | torch.device = "cpu") -> dict:
    device = torch.device(device)
    full = _training_step(topology, tokens, device=device, **COST_MODEL)[0]
    bare = _training_step(topology, tokens, device=device, **COST_MODEL)[0]

    def bare_step() -> None:
        with without_edge_ops():
            bare()

    ms = interleaved_medians({"full": full, "no_edge_ops": bare_step}, reps, device, warmup=1)
    return {"topology": topology, "tokens": tokens, "machine": machine(device), "reps": reps,
            "ms_full": ms["full"], "ms_no_edge_ops": ms["no_edge_ops"],
            "per_token_share": ms["no_edge_ops"] / ms["full"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--topology", default="ws-0.3-hub1")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    text = json.dumps(measure(args.tokens, args.topology, args.reps, args.device))
    if args.out:
        atomic_write_text(args.out, text + "\n")
    print(text)


if __name__ == "__main__":
    main()
