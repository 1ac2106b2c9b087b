"""``hub_graph`` (``graphs.build("hub", ...)``): hubs added to a base topology at the N k / 2 budget; ``reach``."""

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from wsfusion import graphs
from wsfusion.graphs.edges import is_symmetric
from wsfusion.graphs.metrics import path_lengths

BASES = ("lattice", "ws", "random", "bigbird")
nodes_strategy = st.dictionaries(st.sampled_from(["visual", "text", "audio", "depth"]), st.integers(0, 20),
                                 min_size=1, max_size=4).filter(lambda d: sum(d.values()) >= 3)


def pairs_of(graph):
    """The undirected edges ``(u, v)``, ``u < v``, as a Python set."""
    src, dst = graph.edge_index.tolist()
    return {(u, v) for u, v in zip(src, dst) if u < v}


def expected_hubs(nodes, hubs, per_modality):
    """The hub ids and the hub edges, written out independently of the builder."""
    blocks, start = [], 0
    for size in nodes.values():
        blocks.append(range(start, start + size))
        start += size
    if per_modality:
        hub_ids = [block.start + (2 * j + 1) * len(block) // (2 * hubs) for block in blocks if len(block)
                   for j in range(hubs)]
    else:
        hub_ids = [(2 * j + 1) * start // (2 * hubs) for j in range(hubs)]
    edges = set()
    for u in hub_ids:
        if per_modality:
            near = [*next(block for block in blocks if u in block), *hub_ids]
        else:
            near = range(start)
        edges |= {(min(u, v), max(u, v)) for v in near if v != u}
    return hub_ids, edges


@settings(max_examples=60, deadline=None)
@given(nodes=nodes_strategy, half_k=st.integers(1, 5), hubs=st.integers(1, 3), per_modality=st.booleans(),
       base=st.sampled_from(BASES), seed=st.integers(0, 2**16))
def test_hub_graph_keeps_the_budget_and_every_hub_edge(nodes, half_k, hubs, per_modality, base, seed):
    n, k = sum(nodes.values()), 2 * half_k
    assume(k < n)
    assume(hubs <= min(size for size in nodes.values() if size) if per_modality else hubs <= n)
    hub_ids, hub_edges = expected_hubs(nodes, hubs, per_modality)
    assert graphs.hub_nodes(nodes, hubs, per_modality=per_modality).tolist() == sorted(hub_ids)
    if len(hub_edges) > n * k // 2:  # refused, with the smallest k that fits
        with pytest.raises(ValueError, match=r"exceed the N k / 2 = \d+ edge budget at k = \d+") as error:
            graphs.hub_graph(nodes, k, hubs=hubs, per_modality=per_modality, base=base, seed=seed)
        fits = 2 * -(-len(hub_edges) // n)
        assert n * fits // 2 >= len(hub_edges) > n * (fits - 2) // 2
        assert f"hubs = {hubs}" in str(error.value)
        assert (f"smallest k that fits is {fits}" if fits < n else "no even k") in str(error.value)
        return
    try:
        graph = graphs.build("hub", nodes, k, hubs=hubs, per_modality=per_modality, base=base, seed=seed)
    except ValueError as error:  # only bigbird's own budget may refuse
        assert base == "bigbird" and "bigbird needs k" in str(error)
        return
    ei = graph.edge_index
    assert ei.shape[1] == n * k  # exactly N k / 2 undirected edges, both directions stored
    assert is_symmetric(ei, n) and not bool((ei[0] == ei[1]).any())
    assert torch.unique(ei[0] * n + ei[1]).numel() == ei.shape[1]
    edges = pairs_of(graph)
    assert hub_edges <= edges  # every hub joined to all it should be
    assert edges - hub_edges <= pairs_of(graphs.build(base, nodes, k, seed=seed))  # the rest is the base's
    assert graph.node_counts == nodes and graph.k == k and graph.seed == seed
    again = graphs.hub_graph(nodes, k, hubs=hubs, per_modality=per_modality, base=base, seed=seed)
    assert torch.equal(again.edge_index, ei)
    # shared hubs: every node within 2 hops of every other; per-modality hubs (a clique): within 3
    assert graphs.reach(graph, 3 if per_modality and sum(1 for s in nodes.values() if s) > 1 else 2) == n


def test_hub_ids_are_the_midpoints_of_equal_segments():
    nodes = {"visual": 8, "text": 8, "audio": 8}
    assert graphs.hub_nodes(nodes).tolist() == [12]
    assert graphs.hub_nodes(nodes, 2).tolist() == [6, 18]
    assert graphs.hub_nodes(nodes, 2, per_modality=True).tolist() == [2, 6, 10, 14, 18, 22]
    assert graphs.hub_nodes({"a": 5, "b": 0, "c": 3}, 1, per_modality=True).tolist() == [2, 6]
    assert graphs.hub_nodes(nodes, 24).tolist() == list(range(24))
    with pytest.raises(ValueError, match=r"hubs = 4 is more than the 3 nodes of modality 'b'"):
        graphs.hub_nodes({"a": 5, "b": 3}, 4, per_modality=True)
    with pytest.raises(ValueError, match=r"hubs = 9 is more than the 8 nodes of the graph"):
        graphs.hub_nodes({"a": 5, "b": 3}, 9)
    with pytest.raises(ValueError, match=r"hubs must be a positive integer, got 0"):
        graphs.hub_nodes(nodes, 0)
    with pytest.raises(ValueError, match=r"per_modality must be a bool"):
        graphs.hub_nodes(nodes, 1, per_modality=1)
    with pytest.raises(ValueError, match=r"modality 'a' has -1 nodes"):
        graphs.hub_graph({"a": -1, "b": 30}, 4)


def test_shared_and_per_modality_hubs_and_their_reach():
    nodes = {"visual": 32, "text": 32, "audio": 32}
    shared = graphs.hub_graph(nodes, 8, hubs=2, seed=0)
    degree = torch.bincount(shared.edge_index[1], minlength=96)
    assert graphs.hub_nodes(nodes, 2).tolist() == [24, 72] and degree[[24, 72]].tolist() == [95, 95]
    assert path_lengths(shared)["diameter"] == 2 and graphs.reach(shared, 2) == 96
    per = graphs.hub_graph(nodes, 8, hubs=2, per_modality=True, seed=0)
    hubs = graphs.hub_nodes(nodes, 2, per_modality=True)
    assert hubs.tolist() == [8, 24, 40, 56, 72, 88]
    adjacency = per.to_dense_mask().bool()
    for hub in hubs.tolist():
        block = range(hub // 32 * 32, hub // 32 * 32 + 32)
        assert all(adjacency[hub, v] for v in [*block, *hubs.tolist()] if v != hub)
    assert path_lengths(per)["diameter"] <= 3 and graphs.reach(per, 3) == 96
    assert graphs.reach(per, 1, sources=hubs) >= 32 + 4  # a hub reads its modality and the 4 other modalities' hubs


def test_over_budget_hubs_name_k_hubs_the_budget_and_the_smallest_k():
    nodes = {"visual": 32, "text": 32, "audio": 32}
    with pytest.raises(ValueError, match=r"hub: the hub edges alone \(282 at hubs = 3, per_modality = False, "
                                         r"N = 96\) exceed the N k / 2 = 192 edge budget at k = 4; "
                                         r"the smallest k that fits is 6"):
        graphs.hub_graph(nodes, 4, hubs=3)
    assert graphs.hub_graph(nodes, 6, hubs=3).num_edges == 288
    with pytest.raises(ValueError, match=r"no even k < N = 10 fits; use fewer hubs"):
        graphs.hub_graph({"a": 10}, 4, hubs=9)


def test_base_and_its_options_and_the_vocabulary_pass_through():
    nodes = {"visual": 20, "audio": 20}
    graph = graphs.hub_graph(nodes, 4, hubs=1, base="ws", beta=0.0, order="blocked", seed=3,
                             vocabulary=("visual", "text", "audio"))
    lattice = pairs_of(graphs.ws_cross_modal_graph(nodes, 4, 0.0, order="blocked"))
    assert pairs_of(graph) - expected_hubs(nodes, 1, False)[1] <= lattice
    assert graph.order == "blocked" and torch.equal(graph.ring_order, torch.arange(40))
    assert graph.vocabulary == ("visual", "text", "audio") and graph.num_relations == 9
    assert graphs.build("hub", nodes, 4, hubs=2, per_modality=True, seed=1) == graphs.hub_graph(
        nodes, 4, hubs=2, per_modality=True, seed=1)
    with pytest.raises(ValueError, match=r"hub: base must be one of \('lattice', 'ws', 'random', 'bigbird'\), "
                                         r"got 'hub'"):
        graphs.hub_graph(nodes, 4, base="hub")
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'beta'"):
        graphs.hub_graph(nodes, 4, base="lattice", beta=0.1)


@settings(max_examples=25, deadline=None)
@given(nodes=nodes_strategy, half_k=st.integers(1, 3), depth=st.integers(0, 4), seed=st.integers(0, 100))
def test_reach_of_the_lattice_is_1_plus_k_l_and_never_above_the_moore_bound(nodes, half_k, depth, seed):
    n, k = sum(nodes.values()), 2 * half_k
    assume(k < n)
    assert graphs.reach(graphs.lattice_graph(nodes, k), depth) == min(n, 1 + k * depth)
    ws = graphs.build("ws", nodes, k, beta=0.3, seed=seed)
    max_degree = int(torch.bincount(ws.edge_index[1]).max())
    assert graphs.reach(ws, depth) <= graphs.moore_bound(max_degree, depth)


def test_reach_sources_and_moore_bound_values():
    graph = graphs.lattice_graph({"visual": 16, "text": 16}, 4)
    assert graphs.reach(graph, 2, sources=[0]) == 9 and graphs.reach(graph, 0) == 1
    assert graphs.reach(graph, 2, sources=torch.tensor([3, 5])) == 9
    assert [graphs.moore_bound(4, depth) for depth in range(4)] == [1, 5, 17, 53]
    assert graphs.moore_bound(2, 5) == 11  # a ring
    with pytest.raises(ValueError, match=r"sources must be node ids in \[0, 32\)"):
        graphs.reach(graph, 1, sources=[32])
    with pytest.raises(ValueError, match=r"depth must be a non-negative integer, got -1"):
        graphs.reach(graph, -1)
