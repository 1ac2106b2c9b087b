"""Fixtures of the AV-digits family's tests: the fake source files' raw arrays."""

import gzip

import numpy as np
import pytest

from wsfusion.data import fetch


@pytest.fixture(scope="module")
def raw(fake_av_data):
    with fake_av_data.installed() as root:
        with gzip.open(fetch("mnist", root=root, download=False)) as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64)
        with np.load(fetch("fsdd", root=root, download=False)) as npz:
            fsdd = {k: npz[k] for k in ("X", "y", "lengths")}
    fsdd["offsets"] = np.concatenate([[0], np.cumsum(fsdd["lengths"])])
    return {"pixels": table[:, :-1], "image_labels": table[:, -1], **fsdd}
