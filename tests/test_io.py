"""Result files are written atomically: a failed write leaves the old file and no temporary file."""

import pytest

from wsfusion._io import atomic_write_text


def test_atomic_write_text_replaces_whole_files_and_cleans_up_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    atomic_write_text(path, "old\n")
    atomic_write_text(path, "new\n")
    assert path.read_text() == "new\n"

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr("wsfusion._io.os.replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(path, "half\n")
    assert path.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
