"""Configuration mistakes: one line on stderr, ``wsfusion <command>: error: ...``, exit status 2, and nothing runs.

Every sub-command is run in-process through ``main(argv)`` with a table of bad inputs; training, data
loading, downloads and benchmarks are replaced by functions that fail the test, so a case that got past
the checks would show. One subprocess run proves the real exit status.
"""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from wsfusion import data
from wsfusion.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
CUDA = torch.cuda.is_available()

# (argv, text the one line must contain: the bad value and what was expected)
CASES = {
    "train": [
        (["--epochs", "0"], "epochs must be a positive integer, got 0"),
        (["--epochs", "-1"], "epochs must be a positive integer, got -1"),
        (["--epochs", "x"], "argument --epochs: invalid int value: 'x'"),
        (["--lr", "nan"], "lr must be a finite number > 0, got nan"),
        (["--lr", "inf"], "lr must be a finite number > 0, got inf"),
        (["--lr", "-0.1"], "lr must be a finite number > 0, got -0.1"),
        (["--batch-size", "0"], "batch_size must be a positive integer, got 0"),
        (["--synthetic-samples", "0"], "synthetic_samples must be a positive integer, got 0"),
        (["--modality-dropout", "1.5"], "modality_dropout must be a number in [0, 1), got 1.5"),
        (["--rewire-every", "0"], "rewire_every must be a positive integer, got 0"),
        (["--rewire-alpha", "2"], "rewire_alpha must be a number in (0, 1), got 2.0"),
        (["--topology-lr", "0"], "topology_lr (or None) must be a finite number > 0, got 0.0"),
        (["--seed", "-1"], "seed must be a non-negative integer, got -1"),
        (["--patience", "0"], "argument --patience: expected a positive integer or 'none', got '0'"),
        (["--fusion", "nope"], "unknown fusion 'nope'; available: early, late,"),
        (["--option", "bogus=1"], "fusion 'ws-gnn' has no option 'bogus'; options: segments,"),
        (["--option", "bogus"], "argument --option: expected KEY=VALUE such as conv=attention, got 'bogus'"),
        (["--option", "k=3"], "k must be even (got 3)"),
        (["--fusion", "ws-transformer", "--option", "k=1000"],
         "fusion 'ws-transformer': k=1000 needs a WS graph of more than k nodes"),
        (["--fusion", "ws-sparse", "--option", "nodes_per_modality=2"],
         "k=6 (the fusion's default) needs a WS graph of more than k nodes, but it has N=6"),
        (["--modalities", "visual,smell"], "modality 'smell' is not in the data; it has ['visual', 'text', 'audio']"),
        (["--modalities", ","], "modalities must be a non-empty list of distinct names or None, got []"),
        (["--fusion", "unimodal"], "UnimodalFusion takes exactly one modality"),
        (["--fusion", "late", "--topology-lr", "0.1"], "topology_lr is set but the model ('late'"),
        (["--fusion", "late", "--rewire", "set"], "rewire='set' rewires WSLinear layers, but fusion 'late' has none"),
        (["--device", "gpu"], "device must be cpu, cuda, cuda:N or auto, got 'gpu'"),
        (["--device", "cuda:99"], "device 'cuda:99' is not available"),
        *([] if CUDA else [(["--device", "cuda"], "device 'cuda' is not available: " + (
            "no CUDA device is visible" if torch.backends.cuda.is_built() else "this torch build has no CUDA support"))]),
        (["--precision", "8"], "argument --precision: invalid choice: '8' (choose from '32', 'bf16', '16')"),
        (["--resume"], "--resume needs --out DIR (the folder holding checkpoint.pt)"),
        (["--out", "README.md"], "--out 'README.md' is a file, not a folder"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--data", "mnist"],
         "argument --data: invalid choice: 'mnist' (choose from "
         + ", ".join(repr(name) for name in data.available()) + ")"),
        (["--data-option", "hard=true"], "dataset 'synthetic' has no option 'hard'; options: kind, num_samples,"),
        (["--data-option", "kind=synergy"],
         "data_options sets 'kind', which the TrainConfig field 'synthetic_kind' sets for data='synthetic'"),
        (["--data-option", "num_classes"], "argument --data-option: expected KEY=VALUE"),
        (["--data", "av-digits", "--data-option", "num_frames=0"], "num_frames must be a positive integer, got 0"),
    ],
    "compare": [
        (["--fusions", "nope"], "unknown fusion 'nope'; available: early, late,"),
        (["--fusions", "late,nope"], "unknown fusion 'nope'"),
        (["--fusions", "only-smell"], "row 'only-smell' names no modality of the data ['visual', 'text', 'audio']"),
        (["--fusions", "unimodal"], "name a unimodal row by its modality, only-<modality>, not 'unimodal'"),
        (["--fusions", ","], "--fusions names no fusion: ','"),
        (["--fusions", "late", "--init-from", "nowhere"],
         "init_from has no checkpoint for row 'late' seed 0 (expected nowhere/runs/late-seed0/checkpoint.pt)"),
        (["--epochs", "0"], "epochs must be a positive integer, got 0"),
        (["--lr", "nan"], "lr must be a finite number > 0, got nan"),
        (["--batch-size", "0"], "batch_size must be a positive integer, got 0"),
        (["--seeds", "0"], "argument --seeds: the seed count must be positive, got '0'"),
        (["--seeds", "3,3"], "argument --seeds: seeds must be distinct non-negative integers, got '3,3'"),
        (["--device", "gpu"], "device must be cpu, cuda, cuda:N or auto, got 'gpu'"),
        (["--precision", "fp8"], "argument --precision: invalid choice: 'fp8'"),
        (["--fusion-options", "missing/options.json"], "cannot read --fusion-options missing/options.json"),
        (["--fusion-options", "pyproject.toml"], "cannot read --fusion-options pyproject.toml"),
        (["--out", "README.md"], "--out 'README.md' is a file, not a folder"),
        (["--fusion", "late"], "ambiguous option: --fusion could match --fusions, --fusion-options"),
        (["--option", "k=2"], "unrecognized arguments: --option k=2"),
        (["--data-option", "noise=1"], "dataset 'synthetic' has no option 'noise'"),
    ],
    "graph": [
        (["--nodes", "a=4,b=4", "--plot", "missing/dir/x.png"], "--plot 'missing/dir/x.png': folder 'missing/dir' does not exist"),
        (["--nodes", "a=4,b=4", "--plot", "src"], "--plot 'src' is a folder; give a file name"),
        (["--nodes", "a=4,b=4", "--k", "3"], "k must be even (got 3)"),
        (["--nodes", "a=4,b=4", "--k", "8"], "k=8 must be smaller than the number of nodes N=8"),
        (["--nodes", "a=4,b=4", "--beta", "2"], "beta must be a number in [0, 1], got 2.0"),
        (["--nodes", "a4"], "argument --nodes: expected NAME=COUNT[,NAME=COUNT...]"),
        (["--nodes", "a=x"], "argument --nodes: node count of 'a' must be an integer, got 'x'"),
        (["--nodes", "a=4", "--seed", "soon"], "argument --seed: seed must be an integer or 'none', got 'soon'"),
        ([], "the following arguments are required: --nodes"),
    ],
    "bench": [
        (["--suite", "nope"], "argument --suite: invalid choice: 'nope'"),
        (["--threads", "0"], "--threads must be a positive integer, got 0"),
        (["--device", "gpu"], "--device must be cpu, cuda, cuda:N or auto, got 'gpu'"),
        (["--device", "cuda:99"], "--device 'cuda:99' is not available"),
        (["--out", "missing/dir/x.json"], "--out 'missing/dir/x.json': folder 'missing/dir' does not exist"),
        (["--quick=1"], "argument --quick: ignored explicit argument '1'"),
    ],
    "data": [
        (["bogus"], "argument action: invalid choice: 'bogus' (choose from 'fetch')"),
        ([], "the following arguments are required: action"),
        (["fetch", "--root", "README.md"], "--root 'README.md' is a file, not a folder"),
    ],
    "fusions": [
        (["--x"], "unrecognized arguments: --x"),
        (["extra"], "unrecognized arguments: extra"),
    ],
}
TABLE = [pytest.param(command, argv, expected, id=f"{command} {' '.join(argv)}")
         for command, cases in CASES.items() for argv, expected in cases]


def test_the_table_covers_every_sub_command():
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(CASES) == set(subparsers.choices)


@pytest.fixture(autouse=True)
def nothing_runs(monkeypatch):
    """Training, data loading, downloads and benchmarks fail the test (an AssertionError is no usage error)."""

    def refuse(*args, **kwargs):
        raise AssertionError("a bad-input case went past the checks")

    from wsfusion.train import trainer

    monkeypatch.setattr(trainer, "build_datasets", refuse)
    monkeypatch.setattr("wsfusion.train.compare.build_datasets", refuse)
    monkeypatch.setattr(trainer.Trainer, "fit", refuse)
    monkeypatch.setattr("wsfusion.data.av_digits.fetch", refuse)
    monkeypatch.setattr("wsfusion.data.fetch_all", refuse)
    monkeypatch.setattr("wsfusion.bench.run", refuse)


@pytest.mark.parametrize("command, argv, expected", TABLE)
def test_a_bad_input_is_one_error_line_and_exit_status_2(command, argv, expected, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # README.md, pyproject.toml and src/ exist there
    data = ["--data", "synthetic"] if command in ("train", "compare") and "--data" not in argv else []
    with pytest.raises(SystemExit) as exc:
        main([command, *data, *argv])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert captured.err.endswith("\n")
    assert lines[0].startswith(f"wsfusion {command}: error: "), lines[0]
    assert expected in lines[0], lines[0]
    assert "Traceback" not in captured.err and "usage:" not in captured.err


def test_an_unknown_command_is_one_line_too(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["nope"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [err.strip()] and err.startswith("wsfusion: error: argument COMMAND: invalid choice: 'nope'")


def test_a_bug_after_the_configuration_stage_keeps_its_traceback(monkeypatch):
    # Only configuration errors become one line: a ValueError raised by training itself propagates.
    from wsfusion.train import trainer

    def broken(self):
        raise ValueError("a bug deep in training")

    def tiny(config):
        from wsfusion.data import SyntheticTriModal

        return tuple(SyntheticTriModal(split, num_samples=8, seed=0) for split in ("train", "val", "test"))

    monkeypatch.setattr(trainer.Trainer, "fit", broken)
    monkeypatch.setattr(trainer, "build_datasets", tiny)
    with pytest.raises(ValueError, match="a bug deep in training"):
        main(["train", "--data", "synthetic", "--fusion", "late", "--epochs", "1"])


def test_the_real_exit_status_is_2():
    result = subprocess.run([sys.executable, "-m", "wsfusion", "train", "--epochs", "0"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == "wsfusion train: error: epochs must be a positive integer, got 0\n"
