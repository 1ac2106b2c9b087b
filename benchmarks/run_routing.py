"""The routing experiment (issue 12): relay accuracy per topology and length, step cost, learned beta.

Training rows go to one resumable JSON file per task variant (rows are reused when topology,
length, seed and every option match), so the sweep can be killed and rerun, and two processes
can share it by taking different seeds or topologies; ``report`` then reads the files back.

    python benchmarks/run_routing.py train --tokens 64 --seeds 0,1,2 &            # one core each
    python benchmarks/run_routing.py train --tokens 64 --seeds 3,4
    python benchmarks/run_routing.py train --tokens 64 --placement local --topologies learned-0.01,learned-0.5
    python benchmarks/run_routing.py cost                                          # ms/step and memory to 4,096
    python benchmarks/run_routing.py cost --tokens 4096 --topologies bigbird       # adds or replaces those rows
    python benchmarks/run_routing.py report                                        # tables (markdown) and plot
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from wsfusion._io import atomic_write
from wsfusion._measure import machine_label
from wsfusion.bench import routing, routing_plot

OUT = Path(__file__).resolve().parent.parent / "docs" / "results" / "routing"


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(","))


def _stages(text: str) -> tuple[tuple[int, int], ...]:
    """``"8:20,16:4,32:4,64:4"`` -> ``((8, 20), (16, 4), (32, 4), (64, 4))``: (tokens, epochs) stages."""
    try:
        return tuple((int(t), int(e)) for t, e in (stage.split(":") for stage in text.split(",")))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--curriculum wants tokens:epochs stages like 8:20,16:4, got {text!r}")


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


def _rank(topology: str) -> int:
    """Table order: the fixed topologies as in ``routing.TOPOLOGIES``, then the rewired, then the learned."""
    order = [*routing.TOPOLOGIES, *routing.REWIRED]
    return order.index(topology) if topology in order else len(order)


def _per_seed_table(placement: str, name: str, summary: list[dict], rows: list[dict]) -> str:
    """Each seed's accuracy (and a learned graph's final beta) for the rows of ``summary``'s options.

    The mean ± interval hides how runs fail: a topology whose seeds split between ~1.0 and chance
    reads the same as one that is mediocre on every seed.
    """
    config = summary[0]["config"]
    by_cell = {(r["tokens"], r["topology"], r["seed"]): r for r in rows
               if r.get("config") == config and r.get("device", "cpu") == summary[0]["device"]}
    seeds = sorted({seed for _, _, seed in by_cell})
    table = (f"### {placement}" + (f" ({name})" if name else "") + ", per seed\n\n| T | topology | "
             + " | ".join(f"seed {s}" for s in seeds) + " |\n|---:|---|" + "---:|" * len(seeds))
    for r in summary:
        cells = []
        for s in seeds:
            row = by_cell.get((r["tokens"], r["topology"], s))
            beta = "" if row is None or row["beta"] is None or not r["topology"].startswith("learned-") \
                else f" (β {row['beta']:.2f})"
            cells.append("" if row is None else f"{row['test_acc']:.3f}{beta}")
        table += f"\n| {r['tokens']:,} | `{r['topology']}` | " + " | ".join(cells) + " |"
    return table


def report(out: Path, plot: bool = True) -> str:
    """Markdown tables of every saved variant and the cost sweep; with ``plot``, writes ``routing.png``."""
    parts = []
    cost_path = out / "cost.json"
    cost_rows = json.loads(cost_path.read_text()) if cost_path.exists() else None
    for path in sorted(out.glob("rows-*.json")):
        placement = path.stem[len("rows-"):]
        default = routing._config({"placement": placement})
        groups: dict[str, list[dict]] = {}
        rows = routing.load_rows(path)
        for r in routing.summary(rows):  # one table per set of options, defaults first
            changed = {key: value for key, value in r["config"].items() if default.get(key) != value}
            name = ", ".join(f"{key}={value}" for key, value in changed.items()) + (
                "" if r["device"] == "cpu" else f" on {r['device']}")
            groups.setdefault(name, []).append(r)
        names = sorted(groups, key=lambda n: (n != "", n))
        for name in names:
            summary = sorted(groups[name], key=lambda r: (r["tokens"], _rank(r["topology"]), r["topology"]))
            parts.append(f"### {placement}" + (f" ({name})" if name else "") +
                         "\n\n| T | topology | edges | depth | avg path | diameter | reach bound | test acc (sum) "
                         "| seeds | beta | ms/step | peak MB | params |\n"
                         "|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|")
            for r in summary:
                acc = f"{r['test_acc']:.3f}" + ("" if r["test_acc_ci95"] is None else f" ± {r['test_acc_ci95']:.3f}")
                parts[-1] += (f"\n| {r['tokens']:,} | `{r['topology']}` | {_fmt(r['edges'], ',.0f') if r['edges'] is not None else 'all'} "
                              f"| {_fmt(r['depth'], 'd')} | {_fmt(r['avg_path_length'], '.2f')} | {_fmt(r['diameter'], 'd')} "
                              f"| {_fmt(r['reach_bound'])} | {acc} | {r['seeds']} | {_fmt(r['beta'], '.3f')} "
                              f"| {_fmt(r['ms_per_step'], '.0f')} | {_fmt(r['peak_mb'], '.0f')} "
                              f"| {_fmt(r['params'], ',d')} |")
            parts.append(_per_seed_table(placement, name, summary, rows))
            if plot and placement == "random" and name == names[0]:  # the default options, or the only ones
                routing_plot.plot(summary, out / "routing.png", cost_rows)
    if cost_rows:
        parts.append("### cost per training step\n\n| T | topology | edges | depth | ms/step | peak MB | reach bound "
                     "| params |\n|---:|---|---:|---:|---:|---:|---:|---:|")
        for r in cost_rows:
            ms = "not run: " + r["skipped"] if r.get("skipped") else _fmt(r["ms_per_step"], ".0f")
            parts[-1] += (f"\n| {r['tokens']:,} | `{r['topology']}` | {r.get('edges') or 'all'} | {_fmt(r.get('depth'), 'd')} "
                          f"| {ms} | {_fmt(r['peak_mb'], '.0f')} | {_fmt(r.get('reach_bound'))} "
                          f"| {_fmt(r.get('params'), ',d')} |")
        parts[-1] += "\n\nmeasured on: " + "; ".join(sorted({machine_label(r.get("machine")) for r in cost_rows}))
    quiet = _quiet_checks(out)
    if quiet:
        parts.append(quiet)
    return "\n\n".join(parts)


def _quiet_checks(out: Path) -> str:
    """The ``cost-quiet-*.json`` files (single-length cost checks with every other job paused), each row with
    dense attention's step time as a multiple of it and the machine it ran on: the ratio is the machine's."""
    table = ""
    for path in sorted(out.glob("cost-quiet-*.json")):
        saved = json.loads(path.read_text())
        rows = saved["rows"] if isinstance(saved, dict) else saved
        dense = {r["tokens"]: r["ms_per_step"] for r in rows if r["topology"] == "dense" and r["ms_per_step"]}
        for r in rows:
            dense_ms = dense.get(r["tokens"])
            ratio = "—" if dense_ms is None or r["topology"] == "dense" else f"{dense_ms / r['ms_per_step']:.1f}×"
            table += (f"\n| `{path.name}` | {r['tokens']:,} | `{r['topology']}` | {_fmt(r['ms_per_step'], ',.0f')} "
                      f"| {_fmt(r['peak_mb'], ',.0f')} | {ratio} | {machine_label(r.get('machine'))} |")
    return table and ("### quiet cost checks\n\n| file | T | topology | ms/step | peak MB | dense ÷ this | machine |\n"
                      "|---|---:|---|---:|---:|---:|---|" + table)


def _merge_cost(path: Path, rows: list[dict]) -> list[dict]:
    """``rows`` in place of the saved cost rows of the same (tokens, topology), the others kept, ordered by tokens:
    lengths or topologies too big to share one process (T = 4,096 holds one model at a time in 24 GB) are
    measured by separate ``cost`` calls into one table."""
    new = {(r["tokens"], r["topology"]): r for r in rows}
    saved = json.loads(path.read_text()) if path.exists() else []
    merged = [new.pop((r["tokens"], r["topology"]), r) for r in saved] + list(new.values())
    return sorted(merged, key=lambda r: r["tokens"])  # stable: a replaced row keeps its place


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("train", "cost", "report"))
    parser.add_argument("--tokens", type=_ints, help="default: 16,64,256 (train), 64,256,1024,4096 (cost)")
    parser.add_argument("--topologies", type=lambda s: tuple(s.split(",")),
                        help="default: every fixed topology and dense (train), lattice,ws-0.3,bigbird,dense (cost)")
    parser.add_argument("--seeds", type=_ints, default=(0, 1, 2, 3, 4))
    parser.add_argument("--placement", choices=("random", "local"), default="random")
    parser.add_argument("--curriculum", type=_stages,
                        help="tokens:epochs stages before the target length (default: routing.DEFAULT_CURRICULUM); "
                             "routing.LONG_CURRICULUM is 8:20,16:4,32:4,64:4,256:4")
    parser.add_argument("--epochs", type=int, help="epochs at the target length (default: run_one's)")
    parser.add_argument("--train-samples", type=int, help="training samples per stage (default: run_one's)")
    parser.add_argument("--reps", type=int, help="cost: timed steps per row (default: routing.cost's)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.what == "train":
        options = {name: value for name, value in (("curriculum", args.curriculum), ("epochs", args.epochs),
                                                   ("train_samples", args.train_samples)) if value is not None}
        rows = routing.run(tokens=args.tokens or routing.DEFAULT_TOKENS, topologies=args.topologies or routing.TOPOLOGIES,
                           seeds=args.seeds, placement=args.placement, device=args.device,
                           out=args.out / f"rows-{args.placement}.json", progress=True, **options)
        print(json.dumps(routing.summary(rows), indent=1))
    elif args.what == "cost":
        rows = routing.cost(tokens=args.tokens or routing.COST_TOKENS, device=args.device,
                            **({"topologies": args.topologies} if args.topologies else {}),
                            **({"reps": args.reps} if args.reps else {}))
        rows = _merge_cost(args.out / "cost.json", rows)
        text = json.dumps(rows, indent=1).encode()
        atomic_write(args.out / "cost.json", lambda f: f.write(text))
        print(report(args.out))
    else:
        print(report(args.out))


if __name__ == "__main__":
    main()
