import subprocess
import sys
from pathlib import Path

import pytest

from wsfusion import fusion
from wsfusion.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "command",
    [[str(Path(sys.executable).parent / "wsfusion"), "--help"], [sys.executable, "-m", "wsfusion", "--help"]],
    ids=["entry-point", "module"],
)
def test_help(command):
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    assert result.stdout.startswith("usage: wsfusion")
    assert "fusions" in result.stdout


def test_fusions_lists_every_registered_name(capsys):
    assert main(["fusions"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(fusion.available())


def test_unknown_command_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["nope"])
    assert exc.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_quickstart_example_runs():
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), "--steps", "1", "--batch", "4", "--fusions", "early,attention,ws-dense"],
        capture_output=True, text=True, check=True,
    )
    rows = result.stdout.strip().splitlines()[-3:]
    assert [r.split()[0] for r in rows] == ["early", "attention", "ws-dense"]


def test_bench_params_suite_prints_json(capsys):
    import json

    assert main(["bench", "--suite", "params", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [row["fusion"] for row in results["params"]] == list(fusion.available())
    dense = next(r for r in results["params"] if r["fusion"] == "ws-dense")
    sparse = next(r for r in results["params"] if r["fusion"] == "ws-sparse")
    assert dense["used"] == sparse["parameters"] < dense["parameters"]


@pytest.mark.slow
def test_bench_quick_runs_every_suite(tmp_path):
    import torch

    from wsfusion import bench

    threads = torch.get_num_threads()
    try:
        results = bench.run(["ws-linear", "attention"], threads=1, quick=True)
    finally:
        torch.set_num_threads(threads)
    row = results["ws-linear"][0]
    assert row["N"] == 192 and set(row["ms"]) >= {"WSLinear", "dense masked", "raw kernels"}
    assert results["attention"][0]["N"] == 256
    assert "| " in bench.tables(results)
