"""The convs' argument checks: once per unchanged tensor, never a stale pass, graph tensors copied once."""

import pytest
import torch

from wsfusion.graphs import ws_cross_modal_graph
from wsfusion.nn import CrossModalAttentionConv, CrossModalConv

GRAPH = ws_cross_modal_graph({"visual": 5, "audio": 5}, k=2, beta=0.3, seed=0)


def convs():
    return [CrossModalConv(4, 4, num_relations=GRAPH.num_relations),
            CrossModalAttentionConv(4, 4, heads=2, num_relations=GRAPH.num_relations)]


def count_reductions(monkeypatch):
    calls = []
    for name in ("max", "min"):
        real = getattr(torch.Tensor, name)

        def counted(self, *args, _real=real, **kwargs):
            calls.append(self)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return calls


@pytest.mark.parametrize("conv", convs(), ids=type)
def test_unchanged_index_tensors_are_range_checked_once(conv, monkeypatch):
    edge_index, edge_type = GRAPH.edge_index, GRAPH.edge_type
    x = torch.randn(3, 10, 4)
    calls = count_reductions(monkeypatch)
    first = conv(x, edge_index, edge_type)
    assert len(calls) > 0  # the first call checks (a device sync on GPU)
    calls.clear()
    again = conv(x, edge_index, edge_type)
    assert calls == []  # the same unchanged tensors: nothing to re-check
    assert torch.equal(first, again)


@pytest.mark.parametrize("conv", convs(), ids=type)
def test_a_tensor_changed_in_place_is_checked_again(conv):
    edge_index, edge_type = GRAPH.edge_index, GRAPH.edge_type
    x = torch.randn(10, 4)
    conv(x, edge_index, edge_type)
    edge_type[0] = GRAPH.num_relations + 3
    with pytest.raises(ValueError, match=rf"edge_type has relation {GRAPH.num_relations + 3} but num_relations=4"):
        conv(x, edge_index, edge_type)
    edge_type[0] = 0
    edge_index[0, 0] = 10
    with pytest.raises(ValueError, match=r"edge_index refers to nodes outside \[0, 10\)"):
        conv(x, edge_index, edge_type)


def test_a_graph_is_copied_to_the_device_once():
    a = GRAPH.edge_tensors("cpu")
    b = GRAPH.edge_tensors(torch.device("cpu"))
    assert a[0] is b[0] and a[1] is b[1]
    assert torch.equal(a[0], GRAPH.edge_index) and torch.equal(a[1], GRAPH.edge_type)
    before = a[0].clone()
    GRAPH.edge_index[0, 0] = 7  # the public property is a copy: the cached tensors stay the graph's
    assert torch.equal(GRAPH.edge_tensors("cpu")[0], before)


@pytest.mark.parametrize("conv", convs(), ids=type)
def test_a_graph_and_its_tensors_give_the_same_output(conv):
    x = torch.randn(2, 10, 4)
    assert torch.equal(conv(x, GRAPH), conv(x, GRAPH.edge_index, GRAPH.edge_type))


def test_the_check_cache_keeps_every_live_tensor_and_forgets_freed_ones(monkeypatch):
    from wsfusion.nn import _inputs

    conv = CrossModalConv(4, 4, num_relations=GRAPH.num_relations)
    x = torch.randn(10, 4)
    edge_type = GRAPH.edge_type  # a copy: keep this one
    first = GRAPH.edge_index.clone()
    conv(x, first, edge_type)
    live = [GRAPH.edge_index.clone() for _ in range(1100)]  # more checked tensors than any fixed cap
    for i in range(len(live)):
        _inputs.resolve_edges("test", live[i], None, 10, 10, torch.device("cpu"))  # the conv's range check
    calls = count_reductions(monkeypatch)
    conv(x, first, edge_type)
    assert calls == []  # still remembered: nothing is cleared wholesale
    monkeypatch.undo()  # the counter holds the tensors it saw
    size = len(_inputs._CHECKED)
    del live
    assert len(_inputs._CHECKED) <= size - 1100  # freed tensors leave the table at once
    for _ in range(50):
        conv(x, GRAPH.edge_index.clone(), edge_type)
    assert len(_inputs._CHECKED) <= size - 1100 + 1


def test_a_new_tensor_at_a_freed_tensors_id_is_checked():
    from wsfusion.nn._inputs import CheckedTensors

    checked = CheckedTensors()
    t = torch.zeros(3)
    checked.remember(t, ("a",))
    assert checked.passed(t, ("a",)) and not checked.passed(t, ("b",))
    checked.remember(t, ("b",))
    assert checked.passed(t, ("a",)) and checked.passed(t, ("b",))
    t.add_(1)
    assert not checked.passed(t, ("a",))  # changed in place: every pass forgotten
    del t
    assert len(checked) == 0
