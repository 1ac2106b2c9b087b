import json

import networkx as nx
import pytest
import torch

from wsfusion.bench import routing
from wsfusion.data import CrossModalRelay

T, K = 24, 8
N = 3 * T


@pytest.mark.parametrize("topology", [t for t in routing.TOPOLOGIES if t != "dense"])
def test_every_sparse_topology_has_the_same_edge_budget(topology):
    graph = routing.build_topology(topology, T, K, seed=1)
    assert graph.num_nodes == N and graph.num_edges == N * K // 2
    assert not graph.self_loops and graph.stats(path_length=False)["connected"]


def test_bigbird_has_one_global_token_and_a_window():
    graph = routing.build_topology("bigbird", T, K, seed=0)
    degree = torch.bincount(graph.edge_index[1], minlength=N)
    hub = T + T // 2  # the middle text token
    assert degree[hub] == N - 1 and int(degree.argmax()) == hub
    lattice = routing.build_topology("lattice", T, K // 2, seed=0)  # the window: a k/2 ring lattice
    edges = set(map(tuple, graph.edge_index.t().tolist()))
    assert set(map(tuple, lattice.edge_index.t().tolist())) <= edges


def test_path_statistics_equal_networkx_and_are_estimated_beyond_the_exact_size(monkeypatch):
    graph = routing.build_topology("ws-0.1", T, K, seed=0)
    exact = routing.path_statistics(graph)
    g = graph.to_networkx()
    assert exact["paths_exact"] and exact["diameter"] == nx.diameter(g)
    assert exact["avg_path_length"] == pytest.approx(nx.average_shortest_path_length(g))
    monkeypatch.setattr(routing, "EXACT_PATHS_MAX_NODES", 10)
    monkeypatch.setattr(routing, "PATH_SOURCES", 40)
    estimated = routing.path_statistics(graph)
    assert not estimated["paths_exact"] and estimated["diameter"] <= exact["diameter"]
    assert estimated["avg_path_length"] == pytest.approx(exact["avg_path_length"], rel=0.1)


@pytest.mark.parametrize("layers", [1, 2])
def test_the_prediction_reads_only_what_reaches_the_query_token_in_l_hops(layers):
    # Readout from the designated query token, not a pool: the logits' gradient is non-zero exactly
    # on the tokens within `layers` hops of it on the graph.
    torch.manual_seed(0)
    graph = routing.build_topology("lattice", T, 4, seed=0)
    model = routing.RoutingModel(8, 16, 2, layers, 4, graph)
    inputs = {m: torch.randn(1, T, 8, requires_grad=True) for m in CrossModalRelay.modalities}
    model(inputs).sum().backward()
    touched = torch.cat([inputs[m].grad[0].abs().sum(-1) for m in CrossModalRelay.modalities]) > 0
    query = CrossModalRelay.modalities.index(CrossModalRelay.query[0]) * T + CrossModalRelay.query[1]
    hops = nx.single_source_shortest_path_length(graph.to_networkx(), query, cutoff=layers)
    assert set(touched.nonzero().flatten().tolist()) == set(hops)


def test_dense_reads_every_token():
    torch.manual_seed(0)
    model = routing.RoutingModel(8, 16, 2, 1, 4, None)
    inputs = {m: torch.randn(1, T, 8, requires_grad=True) for m in CrossModalRelay.modalities}
    model(inputs).sum().backward()
    assert all(bool((inputs[m].grad[0].abs().sum(-1) > 0).all()) for m in CrossModalRelay.modalities)


def test_rows_have_the_documented_schema():
    rows = routing.run(tokens=(8,), topologies=("ws-0.3", "dense"), seeds=(0, 1), epochs=1, train_samples=32,
                       test_samples=16, layers=1, width=8, heads=2, batch_size=16)
    assert len(rows) == 4
    for row in rows:
        assert {"topology", "tokens", "seed", "test_acc", "avg_path_length", "diameter", "ms_per_step", "peak_mb",
                "edges"} <= set(row)
        assert 0.0 <= row["test_acc"] <= 1.0 and row["ms_per_step"] > 0
    json.dumps(rows)
    (dense,) = [r for r in routing.summary(rows) if r["topology"] == "dense"]
    assert dense["seeds"] == 2 and dense["test_acc_ci95"] is not None and dense["edges"] is None


def test_unknown_topology():
    with pytest.raises(ValueError, match=r"unknown topologies \['star'\]"):
        routing.run(topologies=("star",))
    with pytest.raises(ValueError, match="topology must be one of"):
        routing.build_topology("star", T, K, 0)
