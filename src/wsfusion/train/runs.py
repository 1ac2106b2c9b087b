"""Run folders: what a finished run computed, stored beside its checkpoint and read back instead of recomputed.

``compare`` keeps each run's evaluation here and the routing benchmark each run's row: a sweep
that is killed or rerun skips the runs whose stored record matches what is asked for now, and
several processes can share a sweep, since each run has its own folder. Records are written
atomically, so a kill never leaves half a file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wsfusion._io import atomic_write_text

__all__ = ["read_record", "write_record"]


def read_record(path: str | Path, matches: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    """The JSON object stored at ``path`` if there is one and ``matches(record)``; ``None`` otherwise
    (a record of another configuration, or of an older format, is redone)."""
    path = Path(path)
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    return record if isinstance(record, dict) and matches(record) else None


def write_record(path: str | Path, record: dict[str, Any]) -> None:
    """Store ``record`` at ``path`` atomically (strict JSON: a NaN raises instead of being written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=2, allow_nan=False) + "\n")
