"""Every option of every sub-command reaches where it belongs: its ``TrainConfig`` field, its builder's argument.

One table row per option the parser defines (:func:`test_the_table_covers_every_option` fails for an
option without a row). A row runs ``main(argv)`` in-process twice, with the option and without it,
with the sinks replaced by recorders (the trainer, ``compare``, the graph builders and plots,
``fetch_all``, ``bench.run``): the recorded value must be the expected one with the option and a
different one without, so an option that is parsed but dropped (``graph --self-loops``, ``--hard``
not reaching ``TrainConfig``) fails its row.
"""

from __future__ import annotations

import argparse
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from wsfusion.cli import build_parser, main

#: What every run of a sub-command needs (its required arguments).
BASE = {"graph": ["--nodes", "a=4,b=4"], "data": ["fetch"]}


@dataclass(frozen=True)
class Row:
    command: str
    option: str  # the option's long flag, or a positional's name
    argv: list[str]  # "{tmp}" is the test's tmp_path
    probe: Callable[[dict[str, Any]], Any]  # what the run recorded -> the value this option sets
    expected: Any
    also: tuple[str, ...] = ()  # given in both runs (an option this one needs)
    compare_default: bool = True  # False: no run without it (a required positional)


def config(field: str) -> Callable[[dict[str, Any]], Any]:
    """The ``TrainConfig`` field that the trainer (train) or ``compare`` (compare) received."""
    return lambda seen: getattr(seen["config"], field)


def arg(sink: str, name: str) -> Callable[[dict[str, Any]], Any]:
    """Argument ``name`` of the recorded call to ``sink`` (``None`` when it was not called)."""
    return lambda seen: seen[sink][name] if seen.get(sink) is not None else None


def stdout_is_json(seen: dict[str, Any]) -> bool:
    try:
        return isinstance(json.loads(seen["stdout"]), dict)
    except json.JSONDecodeError:
        return False


def run_rows(command: str) -> list[Row]:
    """The options shared by ``train`` and ``compare`` (``_add_run_options``): TrainConfig fields."""
    return [
        Row(command, "--data", ["--data", "synthetic"], config("data"), "synthetic"),
        Row(command, "--data-option", ["--data-option", "num_frames=32"], config("data_options"), {"num_frames": 32}),
        Row(command, "--hard", ["--hard"], config("hard"), True),
        Row(command, "--synthetic-kind", ["--synthetic-kind", "uniqueness"], config("synthetic_kind"), "uniqueness"),
        Row(command, "--synthetic-samples", ["--synthetic-samples", "123"], config("synthetic_samples"), 123),
        Row(command, "--epochs", ["--epochs", "3"], config("epochs"), 3),
        Row(command, "--batch-size", ["--batch-size", "7"], config("batch_size"), 7),
        Row(command, "--lr", ["--lr", "0.0125"], config("lr"), 0.0125),
        Row(command, "--patience", ["--patience", "3"], config("patience"), 3),
        Row(command, "--modality-dropout", ["--modality-dropout", "0.25"], config("modality_dropout"), 0.25),
        Row(command, "--rewire", ["--rewire", "set"], config("rewire"), "set"),
        Row(command, "--rewire-every", ["--rewire-every", "7"], config("rewire_every"), 7),
        Row(command, "--rewire-alpha", ["--rewire-alpha", "0.5"], config("rewire_alpha"), 0.5),
        Row(command, "--topology-lr", ["--topology-lr", "0.05"], config("topology_lr"), 0.05),
        Row(command, "--temperature-schedule", ["--temperature-schedule"], config("temperature_schedule"), True),
        Row(command, "--encoder-pool", ["--encoder-pool", "mean"], config("encoder_pool"), "mean"),
        Row(command, "--device", ["--device", "auto"], config("device"), "auto"),
        Row(command, "--precision", ["--precision", "bf16"], config("precision"), "bf16"),
    ]


ROWS = [
    *run_rows("train"),
    Row("train", "--out", ["--out", "{tmp}/run"], lambda seen: seen["trainer_out"], "{tmp}/run"),
    Row("train", "--fusion", ["--fusion", "late"], config("fusion"), "late"),
    Row("train", "--option", ["--option", "conv=attention", "--option", "segments=4"], config("fusion_options"),
        {"conv": "attention", "segments": 4}),
    Row("train", "--modalities", ["--modalities", "visual,audio"], config("modalities"), ["visual", "audio"]),
    Row("train", "--seed", ["--seed", "5"], config("seed"), 5),
    Row("train", "--resume", ["--resume"], lambda seen: seen["resumed"], True, also=("--out", "{tmp}/run")),
    Row("train", "--init-from", ["--init-from", "{tmp}/short"], config("init_from"), "{tmp}/short"),
    *run_rows("compare"),
    Row("compare", "--out", ["--out", "{tmp}/runs"], arg("compare", "out"), "{tmp}/runs"),
    Row("compare", "--fusions", ["--fusions", "late,only-audio"], arg("compare", "fusions"), ["late", "only-audio"]),
    Row("compare", "--seeds", ["--seeds", "11,12"], arg("compare", "seeds"), [11, 12]),
    Row("compare", "--fusion-options", ["--fusion-options", "{tmp}/options.json"], arg("compare", "fusion_options"),
        {"low-rank": {"rank": 8}}),
    Row("compare", "--init-from", ["--init-from", "{tmp}/short"], arg("compare", "init_from"), "{tmp}/short"),
    Row("graph", "--nodes", ["--nodes", "v=3,t=5"], arg("graph", "nodes"), {"v": 3, "t": 5}),
    Row("graph", "--topology", ["--topology", "lattice"], arg("graph", "topology"), "lattice"),
    Row("graph", "--k", ["--k", "2"], arg("graph", "k"), 2),
    Row("graph", "--beta", ["--beta", "0.5"], arg("graph", "beta"), 0.5),
    Row("graph", "--seed", ["--seed", "7"], arg("graph", "seed"), 7),
    Row("graph", "--order", ["--order", "interleaved"], arg("graph", "order"), "interleaved"),
    Row("graph", "--self-loops", ["--self-loops"], arg("graph", "self_loops"), True),
    Row("graph", "--small-world", ["--small-world"], lambda seen: "sigma" in seen["stdout"], True),
    Row("graph", "--json", ["--json"], stdout_is_json, True),
    Row("graph", "--plot", ["--plot", "{tmp}/g.png"], arg("plot", "path"), "{tmp}/g.png"),
    Row("graph", "--plot-kind", ["--plot-kind", "ring"], arg("plot", "kind"), "ring", also=("--plot", "{tmp}/g.png")),
    Row("data", "action", [], lambda seen: seen.get("fetch") is not None, True, compare_default=False),
    Row("data", "--root", ["--root", "{tmp}"], arg("fetch", "root"), "{tmp}"),
    Row("bench", "--suite", ["--suite", "params", "--suite", "conv"], arg("bench", "suites"), ["params", "conv"]),
    Row("bench", "--quick", ["--quick"], arg("bench", "quick"), True),
    Row("bench", "--threads", ["--threads", "3"], arg("bench", "threads"), 3),
    Row("bench", "--device", ["--device", "cuda:0"], arg("bench", "device"), "cuda:0"),
    Row("bench", "--json", ["--json"], stdout_is_json, True),
    Row("bench", "--out", ["--out", "{tmp}/bench.json"], lambda seen: seen["tmp"].joinpath("bench.json").is_file(),
        True),
]


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(subparsers.choices)


def _options(parser: argparse.ArgumentParser) -> set[str]:
    """Each argument's name: its longest flag, or a positional's ``dest``; ``--help`` left out."""
    return {max(a.option_strings, key=len) if a.option_strings else a.dest
            for a in parser._actions if not isinstance(a, argparse._HelpAction)}


def test_the_table_covers_every_option():
    rows = [(row.command, row.option) for row in ROWS]
    assert len(rows) == len(set(rows)), "a row is in the table twice"
    defined = {(command, option) for command, parser in _subcommands().items() for option in _options(parser)}
    assert set(rows) == defined, (f"options without a row: {sorted(defined - set(rows))}; "
                                  f"rows of no option: {sorted(set(rows) - defined)}")


def test_the_top_level_options_are_help_and_version(capsys):
    parser = build_parser()
    assert _options(parser) == {"--version", "command"}
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    from wsfusion import __version__

    assert capsys.readouterr().out.strip() == f"wsfusion {__version__}"


def _bound(function: Callable, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The call's arguments by name, defaults filled in (so positional and keyword calls look the same)."""
    bound = inspect.signature(function).bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


@pytest.fixture
def recorded(monkeypatch, tmp_path):
    """Replace every sink of the CLI by a recorder into the returned dict; nothing trains, loads or plots."""
    import wsfusion.bench
    import wsfusion.data
    import wsfusion.graphs
    import wsfusion.train
    import wsfusion.train.compare

    seen: dict[str, Any] = {}

    class FakeTrainer:
        def __init__(self, config, out=None, **kwargs):
            seen["config"], seen["trainer_out"], seen["resumed"] = config, out, False

        def resume(self):
            seen["resumed"] = True
            return True

        def fit(self):
            return {"test_acc": 0.5, "val_acc": 0.5, "best_epoch": 1, "epochs_run": 1, "stopped_early": False,
                    "train_seconds": 0.0, "precision": seen["config"].precision}

    monkeypatch.setattr(wsfusion.train, "Trainer", FakeTrainer)
    monkeypatch.setattr(wsfusion.train, "check_config", lambda config: None)

    real_compare = wsfusion.train.compare.compare

    def fake_compare(*args, **kwargs):
        call = _bound(real_compare, args, kwargs)
        seen["compare"] = {"fusions": call["fusions"], "seeds": call["seeds"], "out": call["out"],
                           "fusion_options": call["fusion_options"], "init_from": call["init_from"]}
        seen["config"] = call["base"]
        return {"rows": [], "config": {}}

    monkeypatch.setattr(wsfusion.train.compare, "compare", fake_compare)
    monkeypatch.setattr(wsfusion.train.compare, "check", lambda *args, **kwargs: None)
    monkeypatch.setattr(wsfusion.train.compare, "results_markdown", lambda results: "")

    real_ws, real_build = wsfusion.graphs.ws_cross_modal_graph, wsfusion.graphs.build

    def fake_ws(*args, **kwargs):
        seen["graph"] = {"topology": "ws", **_bound(real_ws, args, kwargs)}
        return real_ws(*args, **kwargs)

    def fake_build(*args, **kwargs):
        call = _bound(real_build, args, kwargs)
        seen["graph"] = {**call, "topology": call["name"]}
        return real_build(*args, **kwargs)

    monkeypatch.setattr(wsfusion.graphs, "ws_cross_modal_graph", fake_ws)
    monkeypatch.setattr(wsfusion.graphs, "build", fake_build)
    monkeypatch.setattr(wsfusion.graphs, "plot_mask", lambda graph, path, **kw: seen.update(plot={"kind": "mask", "path": path}))
    monkeypatch.setattr(wsfusion.graphs, "plot_graph", lambda graph, path, **kw: seen.update(plot={"kind": "ring", "path": path}))

    monkeypatch.setattr(wsfusion.data, "fetch_all", lambda root=None: seen.update(fetch={"root": root}) or {})

    real_run = wsfusion.bench.run

    def fake_run(*args, **kwargs):
        call = _bound(real_run, args, kwargs)
        suites = next(iter(call.values()))  # the first parameter: the suites
        seen["bench"] = {"suites": suites, "quick": call["quick"], "threads": call["threads"], "device": call["device"]}
        return {"params": []}

    monkeypatch.setattr(wsfusion.bench, "run", fake_run)
    monkeypatch.setattr(wsfusion.bench, "tables", lambda results: "TABLE")
    # `bench --device cuda:0` checks that the device exists: pretend one GPU is there (bench.run is a recorder)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    (tmp_path / "options.json").write_text(json.dumps({"low-rank": {"rank": 8}}))
    seen["tmp"] = tmp_path
    return seen


def _fill(value: Any, tmp: str) -> Any:
    if isinstance(value, str):
        return value.replace("{tmp}", tmp)
    return value


def _run(command: str, argv: list[str], seen: dict[str, Any], capsys) -> Any:
    keep = {"tmp": seen["tmp"]}
    seen.clear()
    seen.update(keep)
    seen["tmp"].joinpath("bench.json").unlink(missing_ok=True)  # a file written by this run only
    threads = torch.get_num_threads()
    try:
        assert main([command, *BASE.get(command, []), *argv]) == 0
    finally:
        torch.set_num_threads(threads)
    seen["stdout"] = capsys.readouterr().out
    return seen


@pytest.mark.parametrize("row", ROWS, ids=[f"{row.command} {row.option}" for row in ROWS])
def test_every_option_reaches_its_destination(row, recorded, capsys):
    tmp = str(recorded["tmp"])
    also = [_fill(a, tmp) for a in row.also]
    expected = _fill(row.expected, tmp)
    given = row.probe(_run(row.command, [*also, *(_fill(a, tmp) for a in row.argv)], recorded, capsys))
    assert given == expected, f"{row.command} {' '.join(row.argv)}: got {given!r}, expected {expected!r}"
    if row.compare_default:
        default = row.probe(_run(row.command, also, recorded, capsys))
        assert default != expected, f"premise: {row.command} without {row.option} must differ, got {default!r}"
