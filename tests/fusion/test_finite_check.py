"""Non-finite features: a clear ValueError on CPU, no host sync per forward on CUDA (FusionModule.check_finite)."""

import pytest
import torch

from wsfusion import fusion
from wsfusion.fusion.base import FINITE_CHECKS, FusionModule, finite_check_for

DIMS = {"visual": 6, "audio": 4}
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def features(device="cpu"):
    return {m: torch.randn(3, d, device=device) for m, d in DIMS.items()}


def with_nan(x, name="audio"):
    bad = dict(x)
    bad[name] = x[name].clone()
    bad[name][0, 0] = float("nan")
    return bad


@pytest.mark.parametrize("name", ["late", "ws-gnn"])
def test_the_default_on_cpu_is_a_value_error_naming_the_modality(name):
    module = fusion.build(name, DIMS, 2)
    assert module.check_finite == "auto" and finite_check_for(torch.device("cpu")) == "sync"
    with pytest.raises(ValueError, match=r"'audio' features contains non-finite values \(1 NaN, 0 inf\)"):
        module(with_nan(features()))


def test_auto_is_async_on_cuda_and_sync_elsewhere():
    assert finite_check_for(torch.device("cuda", 0)) == "async"
    assert finite_check_for("cuda") == "async"
    assert finite_check_for(torch.device("cpu")) == "sync" and finite_check_for("meta") == "sync"


def test_async_mode_never_reads_a_tensor_on_the_host(monkeypatch):
    module = fusion.build("late", DIMS, 2)
    module.check_finite = "async"
    x = features()

    def sync(*args, **kwargs):
        raise AssertionError("the finite check read a device value on the host")

    monkeypatch.setattr(torch.Tensor, "__bool__", sync)
    monkeypatch.setattr(torch.Tensor, "item", sync)
    module.check_inputs(x)  # finite: passes without one host read
    with pytest.raises(RuntimeError, match=r"LateFusion: 'audio' features contain non-finite values"):
        module.check_inputs(with_nan(x))  # on CPU the async assert raises at once


def test_sync_and_off_and_a_bad_mode():
    module = fusion.build("late", DIMS, 2)
    module.check_finite = "sync"
    with pytest.raises(ValueError, match=r"LateFusion: 'audio' features contains non-finite values"):
        module(with_nan(features()))
    module.check_finite = "off"
    module(with_nan(features()))  # the user's choice: no check
    module.check_finite = "always"
    with pytest.raises(ValueError, match=rf"LateFusion: check_finite must be one of {FINITE_CHECKS!r}".replace("(", r"\(")
                       .replace(")", r"\)")):
        module(features())
    assert FusionModule.check_finite == "auto"


@CUDA
def test_cuda_forward_checks_without_a_device_sync():
    module = fusion.build("ws-gnn", DIMS, 2).cuda()
    x = features("cuda")
    module(x)  # warm-up (lazy caches may sync once)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        module.check_inputs(x)
    finally:
        torch.cuda.set_sync_debug_mode("default")
