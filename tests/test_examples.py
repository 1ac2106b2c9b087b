"""Every example runs as written (tiny budgets)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# Runs an example as __main__ after pointing wsfusion.data.SOURCES at the fake AV-digits files of
# tests/conftest.py (their checksums arrive as JSON in WSFUSION_TEST_FAKE_SOURCES).
WITH_FAKE_SOURCES = """\
import json, os, runpy, sys
from wsfusion.data import sources
for name, fields in json.loads(os.environ["WSFUSION_TEST_FAKE_SOURCES"]).items():
    sources.SOURCES[name] = sources.DataSource(**fields)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run(script: str, *args: str, fake_av_data=None, home: Path | None = None) -> str:
    """Run an example; with ``fake_av_data`` it reads the fake AV-digits files and nothing else.

    Then ``WSFUSION_DATA`` names the fake files' folder, the user cache directory is ``home`` (an
    empty folder the caller can check stays empty, never the real ``~/.cache``) and pip has no index.
    """
    cmd = [sys.executable, str(EXAMPLES / script), *args]
    env = None
    if fake_av_data is not None:
        cmd = [sys.executable, "-c", WITH_FAKE_SOURCES, str(EXAMPLES / script), *args]
        env = {**os.environ, "WSFUSION_DATA": str(fake_av_data.root), "XDG_CACHE_HOME": str(home),
               "WSFUSION_TEST_FAKE_SOURCES": fake_av_data.sources_json(), "PIP_NO_INDEX": "1",
               "PIP_CONFIG_FILE": os.devnull}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
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
def test_train_av_digits(tmp_path, fake_av_data):
    home = tmp_path / "user-cache"
    out = run("train_av_digits.py", "--fusion", "late", "--epochs", "1", "--out", str(tmp_path / "run"),
              fake_av_data=fake_av_data, home=home)
    assert out.startswith("late: test accuracy")
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    assert not home.exists()  # the data came from the fixture's folder, not the user cache


@pytest.mark.slow
def test_learnable_topology(tmp_path):
    out = run("learnable_topology.py", "--seeds", "1", "--epochs", "1", "--samples", "128", "--out", str(tmp_path))
    assert "| learnable beta |" in out and "| RigL |" in out
    for name in ("topology.json", "topology.md", "topology.png"):
        assert (tmp_path / name).exists()
