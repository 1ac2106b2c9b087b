"""``wsfusion._validation``: the shared checks that the graphs and the fusions both call."""

from __future__ import annotations

import numpy as np
import pytest

from wsfusion._validation import check_int, check_modality_dims, check_modality_mapping, is_int
from wsfusion.graphs._checks import check_nodes


@pytest.mark.parametrize(("value", "expected"), [(3, True), (np.int64(3), True), (True, False), (3.0, False),
                                                 ("3", False), (None, False)])
def test_is_int_refuses_bools_and_floats(value, expected):
    assert is_int(value) is expected
    if expected:
        assert check_int(value, "n") == 3
    else:
        with pytest.raises(ValueError, match=r"n must be a non-negative integer"):
            check_int(value, "n")


@pytest.mark.parametrize(("mapping", "message"), [
    ({}, "got an empty mapping"),
    ([("a", 1)], "got list"),
    ({3: 1}, "modality names must be strings, got 3 (int)"),
    ({"": 1}, "modality names must be non-empty strings, got ''"),
])
def test_graph_nodes_and_fusion_dims_share_the_mapping_check(mapping, message):
    with pytest.raises(ValueError) as nodes:
        check_nodes(mapping)
    with pytest.raises(ValueError) as dims:
        check_modality_dims(mapping, "EarlyFusion")
    assert message in str(nodes.value) and message in str(dims.value)
    assert str(nodes.value).startswith("nodes must be") or str(nodes.value).startswith("modality")
    assert str(dims.value).startswith("EarlyFusion")


def test_the_value_rule_is_the_callers():
    assert check_nodes({"a": np.int64(2), "b": 0}) == (("a", "b"), (2, 0))
    assert check_modality_dims({"a": np.int64(2)}, "EarlyFusion") == {"a": 2}
    with pytest.raises(ValueError, match=r"EarlyFusion: modality 'b' needs a positive integer feature dim, got 0"):
        check_modality_dims({"a": 2, "b": 0}, "EarlyFusion")
    doubled = check_modality_mapping({"a": 1, "b": 2}, "x must be a mapping", lambda name, v: 2 * v)
    assert doubled == {"a": 2, "b": 4} and list(doubled) == ["a", "b"]
