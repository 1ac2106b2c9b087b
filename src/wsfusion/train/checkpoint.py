"""Checkpoints that round-trip exactly and load with ``weights_only=True``.

Written atomically (temporary file in the same folder, then ``os.replace``),
so a run killed mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch

from wsfusion._io import atomic_write


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Atomically write ``state`` (tensors, numbers, strings, lists, dicts) to ``path``."""
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint without unpickling arbitrary objects (``weights_only=True``)."""
    return torch.load(path, map_location=map_location, weights_only=True)


def warm_start(model: torch.nn.Module, path: str | os.PathLike[str]) -> None:
    """Copy the model of the checkpoint ``path`` (a ``checkpoint.pt``, or a run folder holding one) into
    ``model``: the run's final weights (its last epoch, not its best-validation one), matched by name.

    Every parameter of ``model`` (tied ones under each of their names) must be in the checkpoint with
    the same shape, and the checkpoint must hold no parameter ``model`` lacks; otherwise a
    ``ValueError`` names them and nothing is copied. Buffers saved under the same name and shape
    (BatchNorm running statistics) are copied too; any other buffer stays ``model``'s own (a graph
    built for another length). This is how a run starts from a shorter-sequence run (a curriculum
    over the length), or fine-tunes.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "checkpoint.pt")
    if not os.path.isfile(path):
        raise ValueError(f"init_from: no checkpoint at {path!r}")
    saved = load_checkpoint(path)["model"]
    own = dict(model.named_parameters(remove_duplicate=False))
    buffers = dict(model.named_buffers(remove_duplicate=False))
    missing = sorted(set(own) - set(saved))
    unexpected = sorted(n for n in set(saved) - set(own) if n not in buffers)
    mismatched = [f"{n} {list(saved[n].shape)} (saved) vs {list(p.shape)}" for n, p in own.items()
                  if n in saved and saved[n].shape != p.shape]
    if missing or unexpected or mismatched:
        raise ValueError(f"init_from {path!r} does not fit the model: missing {missing}, unexpected {unexpected}, "
                         f"other shapes {mismatched}")
    with torch.no_grad():
        for name, tensor in {**own, **buffers}.items():
            if name in saved and saved[name].shape == tensor.shape:
                tensor.copy_(saved[name])


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) generator states, in weights-only-loadable form."""
    np_state = np.random.get_state()
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
