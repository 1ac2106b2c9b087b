"""Assertions shared by the test modules (importable thanks to pytest's pythonpath)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch import Tensor, nn


def unregistered_tensors(module: nn.Module) -> list[str]:
    """Trainable tensors held by a module outside ``_parameters`` (e.g. in a Python list).

    They are invisible to ``module.parameters()``, so the optimiser never
    updates them and ``.to(device)`` never moves them: the MultiBench LRTF bug.
    """
    found = []
    for mod_name, mod in module.named_modules():
        for attr, value in vars(mod).items():
            if attr.startswith("_"):
                continue
            values = value if isinstance(value, (list, tuple)) else value.values() if isinstance(value, dict) else [value]
            for v in values:
                if isinstance(v, Tensor) and v.requires_grad:
                    found.append(f"{mod_name}.{attr}".lstrip("."))
    return found


def assert_every_parameter_trains(module: nn.Module) -> None:
    """After one backward every registered parameter has a non-zero gradient, and none hides outside."""
    assert unregistered_tensors(module) == []
    for name, p in module.named_parameters():
        assert p.grad is not None, f"{name} received no gradient"
        assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


#: The devices the device-parametrised tests run on: CPU always, CUDA where present (skipped with
#: the reason otherwise), so the same suite checks both (``make gpu-check`` on a CUDA machine).
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")),
]


class Toy:
    """A tiny in-memory two-modality dataset for the trainer tests: the label shifts both inputs."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, 3, (n,), generator=g)
        shift = self.labels.view(-1, 1, 1, 1).float()
        self.inputs = {"visual": torch.randn(n, 1, 8, 8, generator=g) + shift,
                       "audio": torch.randn(n, 1, 8, 12, generator=g) - shift}
        self.modality_shapes = {"visual": (1, 8, 8), "audio": (1, 8, 12)}
        self.num_classes = 3


def benchmark_script(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` imported as a module (the scripts are not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
