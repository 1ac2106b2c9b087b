"""The gradient helper must catch MultiBench's LowRankTensorFusion bug (factors in a list)."""

import pytest
import torch
from torch import nn

from testing_helpers import assert_every_parameter_trains, unregistered_tensors


class ListFactors(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.factors = [nn.Parameter(torch.randn(3, 2))]  # the bug: never registered
        self.bias = nn.Parameter(torch.zeros(2))

    def forward(self, x):
        return x @ self.factors[0] + self.bias


def test_unregistered_parameters_are_caught():
    module = ListFactors()
    module(torch.randn(4, 3)).sum().backward()
    assert unregistered_tensors(module) == ["factors"]
    with pytest.raises(AssertionError):
        assert_every_parameter_trains(module)


def test_zero_gradient_is_caught():
    module = nn.Linear(3, 2)
    (module(torch.randn(4, 3)) * 0).sum().backward()
    with pytest.raises(AssertionError, match="all-zero gradient"):
        assert_every_parameter_trains(module)
