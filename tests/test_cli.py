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
