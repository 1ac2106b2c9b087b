"""Evidence for learnable topology: does connectivity adapt where cross-modal interactions matter?

On :class:`~wsfusion.data.SyntheticTriModal` with a synergy label (``y = (code_visual
+ code_audio) mod C``: no single modality carries it), ``ws-sparse`` starts from the
blocked ring at ``beta = 0`` (few cross-modal edges) and five variants train at the same
edge budget and seeds: fixed ``beta = 0``, fixed ``beta = 0.3``, learnable beta (from
``beta_init = 0.01`` and from 0.3), SET and RigL rewiring (from ``beta = 0``). Each epoch records
beta and the (expected) cross-modal edge fraction of the first WS layer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from wsfusion.topology import LearnableWSLinear
from wsfusion.train import Callback, TrainConfig, build_datasets, train

SHAPES = {"visual": [1, 8, 8], "text": [6, 8], "audio": [1, 8, 12]}

VARIANTS: dict[str, dict[str, Any]] = {
    "fixed beta=0": {"fusion_options": {"beta": 0.0}},
    "fixed beta=0.3": {"fusion_options": {"beta": 0.3}},
    "learnable beta": {"fusion_options": {"beta": 0.01, "topology": "learnable"}},
    "learnable beta (init 0.3)": {"fusion_options": {"beta": 0.3, "topology": "learnable"}},
    "SET": {"fusion_options": {"beta": 0.0}, "rewire": "set"},
    "RigL": {"fusion_options": {"beta": 0.0}, "rewire": "rigl"},
}


def base_config(epochs: int = 12, samples: int = 2000) -> TrainConfig:
    return TrainConfig(
        data="synthetic", synthetic_kind="synergy", synthetic_samples=samples, synthetic_shapes=SHAPES,
        synthetic_classes=4, fusion="ws-sparse", epochs=epochs, batch_size=64, feature_dim=32, fused_dim=32,
        encoder_channels=(8, 8, 8), patience=None, rewire_every=20, rewire_alpha=0.3,
    )


class TopologyTracker(Callback):
    """Per epoch: beta and the cross-modal edge fraction of the first WS layer (expected, for learnable gates)."""

    def __init__(self) -> None:
        self.beta: list[float] = []
        self.cross_modal: list[float] = []

    def on_epoch_end(self, trainer, epoch, metrics):  # noqa: D102
        layer = trainer.model.fusion.layers[0]
        if isinstance(layer, LearnableWSLinear):
            topo = layer.topology
            with torch.no_grad():
                p = topo.probabilities()
                self.beta.append(topo.mean_beta())
                self.cross_modal.append(float((p * topo.is_cross_modal).sum() / p.sum()))
        else:
            graph = layer.graph
            self.beta.append(float("nan") if graph.beta is None else graph.beta)
            self.cross_modal.append(float(graph.is_cross_modal.float().mean()))

    def state_dict(self):  # noqa: D102
        return {"beta": self.beta, "cross_modal": self.cross_modal}

    def load_state_dict(self, state):  # noqa: D102
        self.beta, self.cross_modal = list(state["beta"]), list(state["cross_modal"])


def run(
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int = 12,
    samples: int = 2000,
    nodes_per_modality: int = 16,
    k: int = 4,
    out: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train every variant on every seed; return accuracies and topology curves (and write JSON + PNG to ``out``)."""
    base = base_config(epochs, samples)
    rows: dict[str, Any] = {}
    bar = tqdm(total=len(VARIANTS) * len(seeds), desc="topology", unit="run", disable=not progress)
    for seed in seeds:
        datasets = build_datasets(base.replace(seed=seed))
        for name, variant in VARIANTS.items():
            options = {"nodes_per_modality": nodes_per_modality, "k": k, "seed": seed, **variant["fusion_options"]}
            config = base.replace(seed=seed, fusion_options=options, rewire=variant.get("rewire"))
            tracker = TopologyTracker()
            result, _ = train(config, datasets=datasets, callbacks=[tracker], progress=False)
            row = rows.setdefault(name, {"test_acc": [], "beta": [], "cross_modal": []})
            row["test_acc"].append(result["test_acc"])
            row["beta"].append(tracker.beta)
            row["cross_modal"].append(tracker.cross_modal)
            bar.update()
    bar.close()
    for row in rows.values():
        row["test_acc_mean"] = float(np.mean(row["test_acc"]))
        row["test_acc_std"] = float(np.std(row["test_acc"], ddof=1)) if len(seeds) > 1 else 0.0
    results = {"config": {**base.to_dict(), "seeds": list(seeds), "nodes_per_modality": nodes_per_modality, "k": k},
               "variants": rows}
    if out is not None:
        write(results, Path(out))
    return results


def table(results: dict[str, Any]) -> str:
    lines = ["| variant | test acc (mean ± std) | final beta | final cross-modal fraction |", "|---|---|---|---|"]
    for name, row in results["variants"].items():
        finals = [b[-1] for b in row["beta"]]
        beta = float("nan") if np.isnan(finals).all() else float(np.mean(finals))
        cross = np.mean([c[-1] for c in row["cross_modal"]])
        lines.append(f"| {name} | {row['test_acc_mean']:.3f} ± {row['test_acc_std']:.3f} | "
                     f"{'-' if np.isnan(beta) else f'{beta:.3f}'} | {cross:.3f} |")
    return "\n".join(lines) + "\n"


def write(results: dict[str, Any], out: Path) -> None:
    from matplotlib.figure import Figure

    out.mkdir(parents=True, exist_ok=True)
    (out / "topology.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "topology.md").write_text(table(results))
    fig = Figure(figsize=(11, 4))
    for i, key in enumerate(("beta", "cross_modal")):
        ax = fig.add_subplot(1, 2, i + 1)
        for name, row in results["variants"].items():
            values = np.array(row[key], dtype=float)
            if np.isnan(values).all():  # rewired graphs have no beta
                continue
            curve = values.mean(axis=0)
            ax.plot(np.arange(1, curve.size + 1), curve, marker="o", ms=3, label=name)
        ax.set(xlabel="epoch", ylabel="beta" if key == "beta" else "cross-modal edge fraction",
               title="beta over training" if key == "beta" else "cross-modal edges over training")
        ax.grid(alpha=0.3)
    fig.axes[-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "topology.png", dpi=120)
