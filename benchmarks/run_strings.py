"""AV-digit strings (issue 20 §2): every fusion at each string length, a curriculum over the length, and the cost.

    python benchmarks/run_strings.py train --lengths 1,4,16 --seeds 0,1,2,3,4   # resumable (compare's cache)
    python benchmarks/run_strings.py cost --lengths 4,16,64                     # ms per training step, peak MB
    python benchmarks/run_strings.py report                                     # tables and strings.png
    python benchmarks/run_strings.py train --quick --out /tmp/strings           # minutes: the pipeline, tiny
    python benchmarks/run_strings.py train --lengths 16 --rebuild /tmp/chain    # in a clone: see below

Each length is one ``wsfusion compare`` into ``<out>/strings-S<S>/`` with the same rows, seeds,
encoders (``encoder_pool="mean"``: the position-wise encoders have the same parameters at every
length) and budget. Trained from scratch, no fusion learns the label at S = 4 (the loss stays at
log 2: one mismatching position among S gives almost no gradient), while S = 1 trains; so every
run at a longer length starts from the same row and seed at the previous length
(``compare(init_from=...)``), as the routing benchmark's curriculum does within one run. The
shortest length starts from scratch (or from a finished shorter comparison in ``--out``), and the
weights carried over are each run's final ones (its last epoch), not its best-validation ones.
Results folders keep no checkpoints, so a fresh clone cannot start a longer length from the saved
ones; ``--rebuild DIR`` trains the curriculum of each unfinished row and seed again into ``DIR`` first
(and records how the retrained run scored against the saved one: the same only on the same machine).
``transformer`` (dense attention over every token) runs up to
``--max-dense-length``; beyond it it is left out, and ``cost`` says what one step of it would cost.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from wsfusion import data
from wsfusion._io import atomic_write_text
from wsfusion._measure import interleaved_medians, machine, machine_label, peak_memory_mb
from wsfusion.train import TrainConfig
from wsfusion.train.compare import (NOISE_LEVELS, compare, finished_run, row_options, run_config, run_name,
                                    warm_config)
from wsfusion.train.report import rows_table
from wsfusion.train.trainer import model_for, resolve_device

OUT = Path(__file__).resolve().parent.parent / "docs" / "results"
#: The rows: the pooled fusions, dense and sparse token attention on three graphs, and each modality alone.
ROWS = ("early", "late", "ws-sparse", "transformer", "ws-transformer", "ws-transformer@bigbird",
        "ws-transformer@hubs", "only-visual", "only-audio")
#: The variant rows' options (``compare``'s ``<fusion>@<variant>``): the same model on another graph
#: of the same edge budget; ``ws-transformer`` itself runs on the interleaved WS ring, which lines
#: the positions of the two modalities up (16 visual and 16 audio tokens a position).
VARIANTS = {"ws-transformer@bigbird": {"topology": "bigbird"},
            "ws-transformer@hubs": {"topology": "hub", "topology_options": {"hubs": 1, "per_modality": True}}}
#: Sizes of ``--quick``: the whole pipeline in minutes on 2 cores.
QUICK = dict(lengths=(1, 2), seeds=(0,), num_samples=64, epochs=1, frames_per_position=16)


def base_config(length: int, *, num_samples: int, epochs: int, frames_per_position: int, seed: int = 0
                ) -> TrainConfig:
    """The run configuration every row shares at ``length`` (the row sets fusion, options and seed)."""
    return TrainConfig(data="av-digit-strings", encoder_pool="mean", epochs=epochs, seed=seed,
                       data_options={"length": length, "num_samples": num_samples,
                                     "frames_per_position": frames_per_position})


def part(length: int) -> str:
    """The results folder name (and the README table's label) of one length."""
    return f"strings-S{length}"


def rows_at(length: int, rows: tuple[str, ...], max_dense_length: int) -> list[str]:
    return [r for r in rows if not (r == "transformer" and length > max_dense_length)]


def finished_lengths(out: Path) -> list[int]:
    """The lengths that have a finished comparison (``results.json``) in ``out``, shortest first."""
    return sorted(int(p.name.split("-S")[1]) for p in out.glob("strings-S*") if (p / "results.json").exists())


def shorter_run(out: Path, length: int) -> int | None:
    """The longest length below ``length`` with a comparison in ``out`` (the one to start from), if any."""
    return max((s for s in finished_lengths(out) if s < length), default=None)


def train(lengths: tuple[int, ...], seeds: tuple[int, ...], out: Path, rows: tuple[str, ...] = ROWS,
          max_dense_length: int = 16, rebuild: Path | None = None, **sizes: Any) -> None:
    """One comparison a length, shortest first; each starts from the runs at the next shorter length,
    the first one from the longest finished comparison below it in ``out`` (from scratch if none).

    Results folders keep no checkpoints, so in a fresh clone the first length has nothing to start
    from: with ``rebuild``, the runs it needs are first trained again there (:func:`rebuild_warm_starts`)."""
    lengths = tuple(sorted(lengths))
    previous = shorter_run(out, lengths[0])
    init = None if previous is None else out / part(previous)
    if init is not None and rebuild is not None:
        init = rebuild_warm_starts(out, lengths[0], rows_at(lengths[0], rows, max_dense_length), seeds, rebuild,
                                   max_dense_length, **sizes)
    for length in lengths:
        names = rows_at(length, rows, max_dense_length)
        compare(base_config(length, **sizes), names, seeds=seeds, out=out / part(length), fusion_options=VARIANTS,
                init_from=init)
        init = out / part(length)


def rebuild_warm_starts(out: Path, length: int, rows: list[str], seeds: tuple[int, ...], into: Path,
                        max_dense_length: int = 16, **sizes: Any) -> Path:
    """Train again, into ``into``, the curriculum (every length ``out`` holds below ``length``) of each row
    and seed that ``out`` has not finished at ``length`` (``compare``'s :func:`finished_run`: the same config
    and warm start), and return the comparison there to start from.

    The rebuilt runs are the saved ones retrained: the same configs and seeds, bit-identical only on the
    same processor and torch build. So each rebuilt run's test accuracy at the length it hands over is
    stored beside the saved one, in ``<out>/strings-S<length>/warm-starts/<run>.json``."""
    shorter = [s for s in finished_lengths(out) if s < length]
    base, saved_start = base_config(length, **sizes), out / part(shorter[-1])
    for name in rows:
        todo = tuple(s for s in seeds if finished_run(
            out / part(length) / "runs" / run_name(name, s),
            warm_config(base, name, s, row_options(name, VARIANTS), saved_start), NOISE_LEVELS) is None)
        if not todo:
            continue
        train(tuple(shorter), todo, into, (name,), max_dense_length, **sizes)
        for seed in todo:
            run = run_name(name, seed)
            rebuilt, saved = (json.loads((d / part(shorter[-1]) / "runs" / run / "result.json").read_text())
                              for d in (into, out))
            record = {"row": name, "seed": seed, "length": shorter[-1], "rebuilt_test_acc": rebuilt["test_acc"],
                      "saved_test_acc": saved["test_acc"], "machine": machine(resolve_device(base.device))}
            atomic_write_text(out / part(length) / "warm-starts" / f"{run}.json", json.dumps(record, indent=1) + "\n")
    return into / part(shorter[-1])


def cost(lengths: tuple[int, ...], rows: tuple[str, ...] = ROWS, batch_size: int = 64, reps: int = 3,
         device: str = "cpu", frames_per_position: int = 64, max_dense_length: int | None = None
         ) -> list[dict[str, Any]]:
    """Milliseconds and peak extra MB of one training step (forward, loss, backward) per row and length,
    the rows interleaved at each length, on random inputs of the data's shapes (cost does not depend on
    the weights). ``transformer`` beyond ``max_dense_length`` is not stepped (its row has
    ``ms_per_step=None`` and ``skipped`` saying why): its step time grows with the square of the tokens.
    Each row records its ``machine`` (:func:`wsfusion._measure.machine`)."""
    device_ = torch.device(device)
    measured_on = machine(device_)
    result = []
    for length in lengths:
        base = base_config(length, num_samples=batch_size, epochs=1, frames_per_position=frames_per_position)
        shapes, classes = data.layout("av-digit-strings", length=length, frames_per_position=frames_per_position)
        inputs = {m: torch.randn(batch_size, *s, device=device_) for m, s in shapes.items()}
        labels = torch.randint(classes, (batch_size,), device=device_)
        steps, params, tokens = {}, {}, {}
        for name in rows:
            config = run_config(base, name, 0, row_options(name, VARIANTS))
            used = {m: s for m, s in shapes.items() if not config.modalities or m in config.modalities}
            model = model_for(config, used, classes).to(device_)
            params[name] = sum(p.numel() for p in model.parameters())
            tokens[name] = sum(model.encoders[m].num_tokens for m in used)

            def step(model: torch.nn.Module = model, used: dict = used) -> None:
                F.cross_entropy(model({m: inputs[m] for m in used}), labels).backward()
                model.zero_grad(set_to_none=True)

            if not (name == "transformer" and max_dense_length is not None and length > max_dense_length):
                steps[name] = step
        ms = interleaved_medians(steps, reps, device_, warmup=1)
        peak = peak_memory_mb(steps, device_)
        for n in rows:
            row = {"length": length, "fusion": n, "tokens": tokens[n], "ms_per_step": ms.get(n),
                   "peak_mb": peak.get(n), "params": params[n], "batch_size": batch_size, "machine": measured_on}
            if n not in steps:
                row["skipped"] = f"dense attention beyond S = {max_dense_length}"
            result.append(row)
    return result


def report(out: Path, plot: bool = True) -> str:
    """Each length's rows table (compare's, labelled ``strings-S<S>``) and, with ``cost.json``, the cost table."""
    parts = []
    found = [(length, out / part(length)) for length in finished_lengths(out)]
    results = {length: json.loads((p / "results.json").read_text()) for length, p in found}
    for length, p in found:
        parts.append(rows_table(results[length], label=p.name))
        starts = [json.loads(f.read_text()) for f in sorted(p.glob("warm-starts/*.json"))]
        if starts:
            parts.append(f"### {p.name}: warm starts retrained\n\n" + warm_start_table(starts))
    if results:
        parts.append(seeds_table(results))
    cost_path = out / "strings-cost.json"
    costs = json.loads(cost_path.read_text()) if cost_path.exists() else []
    if costs:
        parts.append(cost_table(costs))
    for path in sorted(out.glob("strings-cost-*.json")):  # extra cost checks, e.g. a smaller batch where dense needs it
        parts.append(f"### {path.name}\n\n" + cost_table(json.loads(path.read_text())))
    if plot and results and costs:
        plot_accuracy_against_cost(results, costs, out / "strings.png")
    return "\n\n".join(parts)


def seeds_table(results: dict[int, dict]) -> str:
    """Markdown rows of each length's test accuracy per seed, since a mean hides how runs fail."""
    seeds = sorted({s["seed"] for result in results.values() for row in result["rows"] for s in row["seeds"]})
    lines = ["| S | fusion | " + " | ".join(f"seed {s}" for s in seeds) + " |",
             "|---:|---|" + "---:|" * len(seeds)]
    for length, result in sorted(results.items()):
        for row in result["rows"]:
            accuracy = {s["seed"]: s["test_acc"] for s in row["seeds"]}
            lines.append(f"| {length} | `{row['fusion']}` | "
                         + " | ".join(f"{accuracy[s]:.3f}" if s in accuracy else "" for s in seeds) + " |")
    return "\n".join(lines)


def warm_start_table(records: list[dict]) -> str:
    """Markdown rows of :func:`rebuild_warm_starts`' records: each retrained run's test accuracy beside the saved
    run's, with the mean of each and the machine under the table."""
    lines = ["| row | seed | S | saved test acc | retrained test acc |", "|---|---:|---:|---:|---:|"]
    lines += [f"| `{r['row']}` | {r['seed']} | {r['length']} | {r['saved_test_acc']:.3f} | {r['rebuilt_test_acc']:.3f} |"
              for r in sorted(records, key=lambda r: (r["row"], r["seed"]))]
    saved = sum(r["saved_test_acc"] for r in records) / len(records)
    rebuilt = sum(r["rebuilt_test_acc"] for r in records) / len(records)
    machines = "; ".join(sorted({machine_label(r.get("machine")) for r in records}))
    return "\n".join(lines) + f"\n\nmean saved {saved:.3f}, retrained {rebuilt:.3f}; retrained on: {machines}"


def cost_table(costs: list[dict]) -> str:
    """Markdown rows of :func:`cost` (batch size and machine under the table)."""
    lines = ["| S | fusion | tokens | ms / step | peak MB | params |", "|---:|---|---:|---:|---:|---:|"]
    lines += [f"| {c['length']} | `{c['fusion']}` | {c['tokens']:,} | "
              + ("not run" if c["ms_per_step"] is None else f"{c['ms_per_step']:.0f}") + " | "
              + ("—" if c["peak_mb"] is None else f"{c['peak_mb']:.0f}") + f" | {c['params']:,} |" for c in costs]
    batches = ", ".join(str(b) for b in sorted({c["batch_size"] for c in costs}))
    machines = "; ".join(sorted({machine_label(c.get("machine")) for c in costs}))
    return "\n".join(lines) + f"\n\nbatch {batches}, measured on: {machines}"


def plot_accuracy_against_cost(results: dict[int, dict], costs: list[dict], path: Path) -> None:
    """One panel a length: each row's test accuracy (mean, 95% interval) against its ms per training step."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from wsfusion.train.report import line_styles

    lengths = sorted(results)
    fig, axes = plt.subplots(1, len(lengths), figsize=(4.5 * len(lengths), 4), squeeze=False)
    names = list(dict.fromkeys(r["fusion"] for length in lengths for r in results[length]["rows"]))
    styles = line_styles(names)
    ms = {(c["length"], c["fusion"]): c["ms_per_step"] for c in costs}
    for ax, length in zip(axes[0], lengths):
        for row in results[length]["rows"]:
            x = ms.get((length, row["fusion"]))
            if x is None:
                continue
            style = styles[row["fusion"]]
            ax.errorbar([x], [row["test_acc"]], yerr=[row["test_acc_ci95"] or 0.0], fmt=style.get("marker", "o"),
                        color=style.get("color"), label=row["fusion"], capsize=3)
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set(title=f"S = {length}", xlabel="ms per training step (batch 64)", ylabel="test accuracy")
    labelled = {}  # every row's marker, whichever lengths it was trained at
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            labelled.setdefault(label, handle)
    axes[0][-1].legend(list(labelled.values()), list(labelled), fontsize=7, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(","))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("train", "cost", "report"))
    parser.add_argument("--lengths", type=_ints, default=(1, 4, 16))
    parser.add_argument("--seeds", type=_ints, default=(0, 1, 2, 3, 4))
    parser.add_argument("--rows", type=lambda s: tuple(s.split(",")), default=ROWS)
    parser.add_argument("--num-samples", type=int, default=2000, help="training strings (val, test: a quarter each)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--frames-per-position", type=int, default=64)
    parser.add_argument("--max-dense-length", type=int, default=16, help="train transformer up to this S")
    parser.add_argument("--max-dense-cost-length", type=int, default=16,
                        help="cost: step transformer up to this S (beyond, its row says it was not run)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: the pipeline in minutes")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--rebuild", type=Path, default=None,
                        help="train: retrain the shorter lengths' runs (whose checkpoints a clone lacks) into this folder")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = dict(num_samples=args.num_samples, epochs=args.epochs, frames_per_position=args.frames_per_position)
    lengths, seeds = args.lengths, args.seeds
    if args.quick:
        if args.out == OUT:
            parser.error("--quick needs --out DIR: its tiny runs must not land in docs/results")
        lengths, seeds = QUICK["lengths"], QUICK["seeds"]
        sizes = {k: QUICK[k] for k in sizes}
    if args.what == "train":
        train(lengths, seeds, args.out, args.rows, args.max_dense_length, args.rebuild, **sizes)
    elif args.what == "cost":
        rows = cost(lengths, args.rows, frames_per_position=sizes["frames_per_position"],
                    max_dense_length=args.max_dense_cost_length)
        atomic_write_text(args.out / "strings-cost.json", json.dumps(rows, indent=1) + "\n")
    print(report(args.out))


if __name__ == "__main__":
    main()
