"""The public topologies (``wsfusion.graphs.build``): one edge budget, symmetric, no self-loops, seeded."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from wsfusion import graphs
from wsfusion.graphs.edges import is_symmetric

nodes_strategy = st.dictionaries(st.sampled_from(["visual", "text", "audio"]), st.integers(4, 24), min_size=1)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(graphs.available()), nodes=nodes_strategy, half_k=st.integers(1, 3),
       seed=st.integers(0, 2**16))
def test_every_topology_has_the_edge_budget_and_is_symmetric_loop_free_and_seeded(name, nodes, half_k, seed):
    k = 2 * half_k + (2 if name == "bigbird" else 0)  # bigbird's hub and window need k >= 4
    n = sum(nodes.values())
    if k >= n:
        return
    try:
        graph = graphs.build(name, nodes, k, seed=seed)
    except ValueError as error:  # only bigbird may refuse, and only for its budget
        assert name == "bigbird" and "budget" in str(error)
        return
    ei = graph.edge_index
    assert ei.shape[1] == n * k  # N k / 2 undirected edges, both directions stored
    assert is_symmetric(ei, n)
    assert not bool((ei[0] == ei[1]).any())
    assert torch.unique(ei[0] * n + ei[1]).numel() == ei.shape[1]  # no duplicate edges
    again = graphs.build(name, nodes, k, seed=seed)
    assert torch.equal(again.edge_index, ei) and torch.equal(again.edge_type, graph.edge_type)


def test_bigbird_has_one_global_token_joined_to_every_node():
    nodes = {"visual": 16, "text": 16, "audio": 16}
    graph = graphs.bigbird_graph(nodes, k=8, seed=0)
    degree = torch.bincount(graph.edge_index[1], minlength=48)
    hub = 16 + 8  # the middle token of the middle modality
    assert int(degree[hub]) == 47 and int(degree.argmax()) == hub


def test_bigbird_puts_its_global_token_in_the_middle_non_empty_modality():
    graph = graphs.bigbird_graph({"visual": 7, "text": 0, "audio": 19}, k=4, seed=0)
    degree = torch.bincount(graph.edge_index[1], minlength=26)
    assert int(degree.argmax()) == 7 + 19 // 2 and int(degree.max()) == 25  # text has no node: audio's middle
    assert graphs.bigbird_graph({"visual": 5, "text": 0}, k=4).num_edges == 10  # was: hub id 5 out of range


def test_lattice_and_random_are_ws_at_beta_0_and_1():
    nodes = {"visual": 10, "audio": 10}
    assert graphs.build("lattice", nodes, 4, seed=1) == graphs.token_graph(nodes, 4, 0.0, seed=1)
    assert graphs.build("random", nodes, 4, seed=1) == graphs.token_graph(nodes, 4, 1.0, seed=1)
    assert graphs.build("ws", nodes, 4, beta=0.3, seed=1, order="blocked") == graphs.token_graph(
        nodes, 4, 0.3, seed=1, order="blocked")


def test_unknown_topology_and_small_bigbird_k_are_clear_errors():
    with pytest.raises(ValueError, match=r"topology must be one of \('lattice', 'ws', 'random', 'bigbird', 'hub'\), "
                                         r"got 'star'"):
        graphs.build("star", {"visual": 8}, 4)
    with pytest.raises(ValueError, match=r"bigbird needs k large enough .* got k = 2"):
        graphs.build("bigbird", {"visual": 30, "text": 30}, 2)


def test_a_token_fusion_runs_on_a_registry_topology():
    from wsfusion.fusion import build

    tokens = {"visual": 6, "audio": 6}
    graph = graphs.build("bigbird", tokens, k=4, seed=0)
    fusion = build("ws-transformer", {"visual": 5, "audio": 7}, 3, tokens=tokens, graph=graph, node_dim=8, heads=2)
    assert fusion.graph is graph
    out = fusion({"visual": torch.randn(2, 6, 5), "audio": torch.randn(2, 6, 7)})
    assert out.shape == (2, 3) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", graphs.available())
def test_seed_none_draws_a_recorded_seed_that_rebuilds_the_graph(name):
    nodes = {"visual": 12, "audio": 12}
    graph = graphs.build(name, nodes, 4, seed=None)
    assert isinstance(graph.seed, int)
    assert torch.equal(graphs.build(name, nodes, 4, seed=graph.seed).edge_index, graph.edge_index)
