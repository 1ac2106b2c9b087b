"""Every example runs as written (tiny budgets)."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_custom_modalities():
    out = run("custom_modalities.py", "--steps", "3")
    assert "accuracy on held-out data" in out and "sensor=4, sequence=4" in out


@pytest.mark.slow
def test_compare_fusions(tmp_path):
    out = run("compare_fusions.py", "--data", "synthetic", "--synthetic-samples", "64", "--epochs", "1",
              "--fusions", "late,ws-gnn", "--out", str(tmp_path))
    assert "| `late` |" in out and "| `ws-gnn` |" in out
    assert (tmp_path / "results.json").exists()


@pytest.mark.slow
def test_train_av_digits(tmp_path):
    out = run("train_av_digits.py", "--fusion", "late", "--epochs", "1", "--out", str(tmp_path))
    assert out.startswith("late: test accuracy")
    assert (tmp_path / "checkpoint.pt").exists()


@pytest.mark.slow
def test_learnable_topology(tmp_path):
    out = run("learnable_topology.py", "--seeds", "1", "--epochs", "1", "--samples", "128", "--out", str(tmp_path))
    assert "| learnable beta |" in out and "| RigL |" in out
    for name in ("topology.json", "topology.md", "topology.png"):
        assert (tmp_path / name).exists()
