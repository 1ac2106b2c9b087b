"""Property-based checks of the WS cross-modal graph over random modality sizes, k, beta, seed and order."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from wsfusion.graphs import ORDERS, CrossModalGraph, ws_cross_modal_graph
from wsfusion.graphs.metrics import hop_distances

NAMES = ("visual", "text", "audio", "depth", "imu")


@st.composite
def graph_args(draw: st.DrawFn, max_per_modality: int = 40, max_k: int = 12) -> dict:
    m = draw(st.integers(1, 4))
    names = draw(st.permutations(NAMES))[:m]
    counts = draw(st.lists(st.integers(1, max_per_modality), min_size=m, max_size=m))
    if sum(counts) < 3:  # k >= 2 needs N >= 3
        counts[0] += 3
    n = sum(counts)
    k = 2 * draw(st.integers(1, min(max_k, n - 1) // 2))
    return dict(
        nodes=dict(zip(names, counts)),
        k=k,
        beta=draw(st.floats(0.0, 1.0)),
        seed=draw(st.integers(0, 2**32 - 1)),
        order=draw(st.sampled_from(ORDERS)),
        self_loops=draw(st.booleans()),
    )


def _build(args: dict) -> CrossModalGraph:
    return ws_cross_modal_graph(
        args["nodes"], args["k"], args["beta"], seed=args["seed"], order=args["order"], self_loops=args["self_loops"]
    )


@settings(max_examples=80, deadline=None)
@given(graph_args())
def test_edge_set_invariants(args: dict) -> None:
    g = _build(args)
    n, k = sum(args["nodes"].values()), args["k"]
    ei = g.edge_index
    assert ei.dtype == torch.long and ei.shape[0] == 2
    src, dst = ei.tolist()
    pairs = list(zip(src, dst))

    assert len(set(pairs)) == len(pairs), "duplicate edges"
    assert set(pairs) == {(d, s) for s, d in pairs}, "edge set not symmetric"
    loops = [s for s, d in pairs if s == d]
    if args["self_loops"]:
        assert sorted(loops) == list(range(n))
    else:
        assert loops == []
    # Rewiring moves edges, never adds or drops them.
    assert (len(pairs) - len(loops)) // 2 == n * k // 2 == g.num_edges
    assert g.num_self_loops == len(loops)
    # Sorted by target, then source.
    assert pairs == sorted(pairs, key=lambda e: (e[1], e[0]))
    assert g.num_nodes == n
    assert ei.min() >= 0 and ei.max() < n


@settings(max_examples=80, deadline=None)
@given(graph_args())
def test_modality_labels_agree_with_endpoints(args: dict) -> None:
    g = _build(args)
    names = list(args["nodes"])
    m = len(names)
    # Node ids are blocked by modality whatever the ring order.
    expected_modality = [i for i, c in enumerate(args["nodes"].values()) for _ in range(c)]
    assert g.node_modality.tolist() == expected_modality
    assert g.modalities == tuple(names)
    for name, sl in g.node_slices.items():
        assert sl.stop - sl.start == args["nodes"][name]
        assert set(expected_modality[sl]) == {names.index(name)}

    src, dst = g.edge_index.tolist()
    types, cross = g.edge_type.tolist(), g.is_cross_modal.tolist()
    for s, d, t, c in zip(src, dst, types, cross):
        ms, md = expected_modality[s], expected_modality[d]
        assert t == ms * m + md
        assert g.relation_names[t] == (names[ms], names[md])
        assert c == (ms != md)
    assert g.num_relations == m * m


@settings(max_examples=40, deadline=None)
@given(graph_args())
def test_same_seed_same_graph(args: dict) -> None:
    a, b = _build(args), _build(args)
    assert a == b
    assert torch.equal(a.edge_index, b.edge_index)
    assert torch.equal(a.ring_order, b.ring_order)


@settings(max_examples=60, deadline=None)
@given(graph_args())
def test_every_export_round_trips(args: dict) -> None:
    g = _build(args)
    n = g.num_nodes
    nodes = args["nodes"]

    mask = g.to_dense_mask()
    assert mask.shape == (n, n) and mask.dtype == torch.float32
    assert torch.equal(mask, mask.T)
    assert int(mask.sum()) == g.edge_index.size(1)
    assert CrossModalGraph.from_dense_mask(mask, nodes) == g

    csr = g.to_scipy()
    assert csr.format == "csr" and csr.shape == (n, n) and csr.nnz == g.edge_index.size(1)
    assert CrossModalGraph.from_scipy(csr, nodes) == g

    G = g.to_networkx()
    assert G.number_of_nodes() == n
    assert G.number_of_edges() == g.num_edges + g.num_self_loops
    assert all(G.nodes[i]["modality"] == g.modalities[m] for i, m in enumerate(g.node_modality.tolist()))
    back = CrossModalGraph.from_networkx(G)
    assert back == g
    assert (back.k, back.beta, back.seed, back.order) == (g.k, g.beta, g.seed, g.order)
    assert torch.equal(back.ring_order, g.ring_order)

    data = g.to_pyg()
    assert data.num_nodes == n
    assert torch.equal(data.edge_type, g.edge_type) and torch.equal(data.node_modality, g.node_modality)
    assert CrossModalGraph.from_pyg(data) == g

    het = g.to_hetero()
    assert het.node_types == list(nodes)
    assert [(s, d) for s, _, d in het.edge_types] == g.relation_names
    for r, (s, rel, d) in enumerate(het.edge_types):
        assert rel == "ws"
        local = het[s, rel, d].edge_index
        assert local.size(1) == int((g.edge_type == r).sum())
        if local.numel():
            assert local[0].max() < nodes[s] and local[1].max() < nodes[d] and local.min() >= 0
    assert CrossModalGraph.from_hetero(het) == g

    assert CrossModalGraph.from_edge_index(g.edge_index, nodes) == g
    # Column order does not matter to the constructor.
    shuffled = g.edge_index[:, torch.randperm(g.edge_index.size(1))]
    assert CrossModalGraph.from_edge_index(shuffled, nodes) == g


@settings(max_examples=60, deadline=None)
@given(graph_args(max_per_modality=25))
def test_stats_agree_with_networkx(args: dict) -> None:
    g = _build(args)
    n = g.num_nodes
    names = list(args["nodes"])
    modality = [names[i] for i in g.node_modality.tolist()]
    # Built independently of to_networkx().
    G = nx.Graph()
    G.add_nodes_from(range(n))
    G.add_edges_from((s, d) for s, d in g.edge_index.t().tolist() if s < d)

    s = g.stats()
    assert s["num_nodes"] == n
    assert s["num_edges"] == G.number_of_edges()
    assert s["num_self_loops"] == (n if args["self_loops"] else 0)
    assert math.isclose(s["density"], nx.density(G), rel_tol=1e-12)
    assert math.isclose(s["clustering"], nx.average_clustering(G), rel_tol=1e-9, abs_tol=1e-12)
    assert s["connected"] == nx.is_connected(G)
    assert s["num_components"] == nx.number_connected_components(G)
    if s["connected"]:
        assert math.isclose(s["path_length"], nx.average_shortest_path_length(G), rel_tol=1e-12)
    else:
        assert s["path_length"] is None
    cross = sum(modality[u] != modality[v] for u, v in G.edges())
    assert math.isclose(s["cross_modal_fraction"], cross / G.number_of_edges())
    expected_pairs = {}
    for i, a in enumerate(names):
        for b in names[i:]:
            expected_pairs[f"{a}-{b}"] = sum({modality[u], modality[v]} == {a, b} for u, v in G.edges())
    assert s["pair_edges"] == expected_pairs


@settings(max_examples=40, deadline=None)
@given(graph_args(), st.sampled_from(ORDERS))
def test_beta_zero_is_the_ring_lattice(args: dict, order: str) -> None:
    args = {**args, "beta": 0.0, "order": order, "self_loops": False}
    g = _build(args)
    n, half = g.num_nodes, args["k"] // 2
    ring = g.ring_order.tolist()
    assert sorted(ring) == list(range(n))
    neighbours = {i: set() for i in range(n)}
    for s, d in g.edge_index.t().tolist():
        neighbours[d].add(s)
    for p, node in enumerate(ring):
        expected = {ring[(p + off) % n] for off in range(1, half + 1)}
        expected |= {ring[(p - off) % n] for off in range(1, half + 1)}
        assert neighbours[node] == expected
    if order == "blocked":
        assert ring == list(range(n))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 50), min_size=1, max_size=5))
def test_interleaved_ring_spreads_every_modality(counts: list[int]) -> None:
    from wsfusion.graphs import interleaved_ring_order

    n, m = sum(counts), len(counts)
    ring = interleaved_ring_order(counts).tolist()
    assert sorted(ring) == list(range(n))
    position = {node: p for p, node in enumerate(ring)}
    start = 0
    for c in counts:
        places = [position[start + j] for j in range(c)]
        assert places == sorted(places), "a modality's nodes keep their id order around the ring"
        for j, p in enumerate(places):
            # Proportional interleaving: node j of n_m sits near fraction (j + 0.5) / n_m of the ring.
            assert abs(p - (j + 0.5) / c * n) <= m / 2 + 1e-9
        start += c
    if len(set(counts)) == 1:
        assert ring == [mod * counts[0] + j for j in range(counts[0]) for mod in range(m)]


def test_rewired_graph_has_the_same_edge_count_as_networkx() -> None:
    # Fixed example to pin down that counting ignores rewiring skips (degree n - 1 nodes).
    g = ws_cross_modal_graph({"a": 3, "b": 2}, k=4, beta=1.0, seed=3)
    assert g.num_edges == 10 == nx.watts_strogatz_graph(5, 4, 1.0, seed=3).number_of_edges()
    assert np.array_equal(g.to_dense_mask().numpy(), nx.to_numpy_array(nx.complete_graph(5)))


@settings(max_examples=40, deadline=None)
@given(graph_args(max_per_modality=25), st.integers(0, 10**6))
def test_hop_distances_agree_with_networkx(args: dict, pick: int) -> None:
    g = _build(args)
    source = pick % g.num_nodes
    G = nx.Graph()
    G.add_nodes_from(range(g.num_nodes))
    G.add_edges_from(g.edge_index.t().tolist())
    expected = nx.single_source_shortest_path_length(G, source)
    hops = hop_distances(g, source)
    assert hops.shape == (g.num_nodes,) and hops[source] == 0
    for node in range(g.num_nodes):
        assert hops[node] == expected.get(node, math.inf)


def test_hop_distances_names_a_bad_source() -> None:
    g = ws_cross_modal_graph({"visual": 4, "audio": 4}, 2, 0.0)
    with pytest.raises(ValueError, match=r"source must be a node id in \[0, 8\), got 8"):
        hop_distances(g, 8)
