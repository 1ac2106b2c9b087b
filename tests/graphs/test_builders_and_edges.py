"""Property checks of ``ring_lattice`` and of the public edge-set utilities (``wsfusion.graphs.edges``)."""

from __future__ import annotations

import networkx as nx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from wsfusion.graphs import CrossModalGraph, interleaved_ring_order, ring_lattice, ws_cross_modal_graph
from wsfusion.graphs.edges import (
    both_directions,
    canonical_edge_index,
    decode_directed,
    decode_undirected,
    directed_keys,
    is_symmetric,
    reverse_keys,
    sample_non_edges,
    sort_edge_index,
    undirected_keys,
)


@st.composite
def lattice_args(draw: st.DrawFn, max_nodes: int = 60) -> tuple[int, int, torch.Tensor | None]:
    n = draw(st.integers(3, max_nodes))
    k = 2 * draw(st.integers(1, (n - 1) // 2))
    ring = None
    if draw(st.booleans()):
        ring = torch.tensor(draw(st.permutations(range(n))), dtype=torch.long)
    return n, k, ring


@st.composite
def edge_sets(draw: st.DrawFn, symmetric: bool = True, max_nodes: int = 25) -> tuple[torch.Tensor, int]:
    """A random duplicate-free edge set in a random column order, and its node count."""
    n = draw(st.integers(1, max_nodes))
    keys = draw(st.sets(st.integers(0, n * n - 1), max_size=3 * n))
    ei = decode_directed(torch.tensor(sorted(keys), dtype=torch.long), n)
    if symmetric:
        ei = torch.unique(torch.cat([ei, ei.flip(0)], dim=1), dim=1)
    perm = torch.tensor(draw(st.permutations(range(ei.size(1)))), dtype=torch.long)
    return ei[:, perm], n


# --------------------------------------------------------------------------- #
# ring_lattice
# --------------------------------------------------------------------------- #
@settings(max_examples=80, deadline=None)
@given(lattice_args())
def test_ring_lattice_is_k_regular_symmetric_canonical_and_loop_free(args):
    n, k, ring = args
    ei = ring_lattice(n, k, ring_order=ring)
    assert ei.dtype == torch.long and tuple(ei.shape) == (2, n * k) and ei.is_contiguous()
    assert not bool((ei[0] == ei[1]).any())
    assert torch.equal(torch.bincount(ei[0], minlength=n), torch.full((n,), k))
    assert torch.equal(torch.bincount(ei[1], minlength=n), torch.full((n,), k))
    keys = directed_keys(ei, n)
    assert bool((keys[1:] > keys[:-1]).all())  # sorted by target then source, no duplicates
    assert is_symmetric(ei, n)
    assert torch.equal(canonical_edge_index(ei, n), ei)
    assert torch.unique(undirected_keys(ei, n)).numel() == n * k // 2


@settings(max_examples=80, deadline=None)
@given(lattice_args())
def test_ring_lattice_joins_ring_neighbours_within_k_half(args):
    n, k, ring = args
    ei = ring_lattice(n, k, ring_order=ring)
    ring = torch.arange(n) if ring is None else ring
    position = torch.empty(n, dtype=torch.long)
    position[ring] = torch.arange(n)
    gap = (position[ei[0]] - position[ei[1]]).remainder(n)
    ring_distance = torch.minimum(gap, n - gap)
    assert bool(((ring_distance >= 1) & (ring_distance <= k // 2)).all())


@settings(max_examples=60, deadline=None)
@given(lattice_args(max_nodes=40))
def test_ring_lattice_with_a_ring_order_is_the_relabelled_identity_lattice(args):
    n, k, ring = args
    ring = torch.randperm(n) if ring is None else ring
    relabelled = sort_edge_index(ring[ring_lattice(n, k)], n)
    assert torch.equal(ring_lattice(n, k, ring_order=ring), relabelled)


@settings(max_examples=40, deadline=None)
@given(lattice_args(max_nodes=40))
def test_ring_lattice_matches_networkx_at_beta_zero(args):
    n, k, _ = args
    ref = nx.watts_strogatz_graph(n, k, 0.0, seed=0)
    pairs = torch.tensor(list(ref.edges()), dtype=torch.long).t()
    expected = sort_edge_index(torch.cat([pairs, pairs.flip(0)], dim=1), n)
    assert torch.equal(ring_lattice(n, k), expected)


@pytest.mark.parametrize("order", ["blocked", "interleaved"])
@pytest.mark.parametrize("nodes", [{"visual": 64, "text": 64, "audio": 64}, {"a": 5, "b": 7, "c": 3}])
def test_ring_lattice_is_the_ws_graph_before_rewiring(nodes, order):
    n = sum(nodes.values())
    for k in (2, 4, 6):
        graph = ws_cross_modal_graph(nodes, k, 0.0, seed=3, order=order)
        ring = interleaved_ring_order(list(nodes.values())) if order == "interleaved" else None
        assert torch.equal(ring_lattice(n, k, ring_order=ring), graph.edge_index)
        assert torch.equal(ring_lattice(n, k, ring_order=graph.ring_order), graph.edge_index)


@pytest.mark.parametrize(
    "num_nodes, k, ring, match",
    [
        (0, 2, None, "num_nodes must be a positive integer"),
        (5.0, 2, None, "num_nodes must be a positive integer"),
        (True, 2, None, "num_nodes must be a positive integer"),
        (6, 3, None, "k must be even"),
        (6, 0, None, "k must be at least 2"),
        (6, 6, None, "must be smaller than the number of nodes"),
        (6, 2, [0, 1, 2, 3, 4, 4], "ring_order must be a permutation"),
        (6, 2, [0, 1, 2], "ring_order must be a permutation"),
    ],
)
def test_ring_lattice_rejects_bad_arguments(num_nodes, k, ring, match):
    with pytest.raises(ValueError, match=match):
        ring_lattice(num_nodes, k, ring_order=ring)


# --------------------------------------------------------------------------- #
# keys, canonical order, symmetry
# --------------------------------------------------------------------------- #
@settings(max_examples=80, deadline=None)
@given(edge_sets(symmetric=False))
def test_keys_decode_back_and_sort_by_target_then_source(args):
    ei, n = args
    keys = directed_keys(ei, n)
    assert torch.equal(decode_directed(keys, n), ei)
    assert torch.equal(reverse_keys(ei, n), directed_keys(ei.flip(0), n))
    und = undirected_keys(ei, n)
    assert torch.equal(und, undirected_keys(ei.flip(0), n))
    pairs = decode_undirected(und, n)
    assert bool((pairs[0] <= pairs[1]).all())
    assert torch.equal(pairs, torch.stack([torch.minimum(ei[0], ei[1]), torch.maximum(ei[0], ei[1])]))
    ordered = sort_edge_index(ei, n)
    expected = sorted(zip(ei[0].tolist(), ei[1].tolist()), key=lambda e: (e[1], e[0]))
    assert list(zip(ordered[0].tolist(), ordered[1].tolist())) == expected


@settings(max_examples=80, deadline=None)
@given(edge_sets(symmetric=False))
def test_canonical_edge_index_sorts_any_column_order_and_is_idempotent(args):
    ei, n = args
    canon = canonical_edge_index(ei, n, symmetric=False)
    assert torch.equal(canon, sort_edge_index(ei, n)) and canon.is_contiguous()
    assert torch.equal(canonical_edge_index(canon, n, symmetric=False), canon)
    assert torch.equal(canonical_edge_index(ei.numpy(), n, symmetric=False), canon)
    if ei.numel():  # an empty nested list has no integer dtype
        assert torch.equal(canonical_edge_index(ei.tolist(), n, symmetric=False), canon)
    pairs = set(zip(ei[0].tolist(), ei[1].tolist()))
    symmetric = all((t, s) in pairs for s, t in pairs)
    assert is_symmetric(ei, n) == symmetric
    if symmetric:
        assert torch.equal(canonical_edge_index(ei, n), canon)
    else:
        with pytest.raises(ValueError, match="not symmetric"):
            canonical_edge_index(ei, n)


@settings(max_examples=80, deadline=None)
@given(edge_sets(symmetric=True))
def test_symmetric_edge_sets_pass_and_lose_symmetry_without_one_edge(args):
    ei, n = args
    assert is_symmetric(ei, n)
    if int((ei[0] == ei[1]).sum()) in (0, n):  # the graph also wants self loops on all nodes or none
        assert torch.equal(canonical_edge_index(ei, n), CrossModalGraph.from_edge_index(ei, {"all": n}).edge_index)
    off = (ei[0] != ei[1]).nonzero().flatten()
    if off.numel():
        broken = torch.cat([ei[:, : off[0]], ei[:, off[0] + 1 :]], dim=1)
        assert not is_symmetric(broken, n)
        with pytest.raises(ValueError, match="not symmetric"):
            canonical_edge_index(broken, n)


def test_canonical_edge_index_rejects_bad_edge_sets():
    with pytest.raises(ValueError, match=r"shape \[2, E\]"):
        canonical_edge_index(torch.zeros(3, 4, dtype=torch.long), 5)
    with pytest.raises(ValueError, match="must hold integers"):
        canonical_edge_index(torch.zeros(2, 4), 5)
    with pytest.raises(ValueError, match="outside 0..4"):
        canonical_edge_index(torch.tensor([[0, 5], [5, 0]]), 5)
    with pytest.raises(ValueError, match="outside 0..4"):
        canonical_edge_index(torch.tensor([[0, -1], [-1, 0]]), 5)
    with pytest.raises(ValueError, match="repeats the edge 1 -> 0"):
        canonical_edge_index(torch.tensor([[1, 0, 1], [0, 1, 0]]), 5)


# --------------------------------------------------------------------------- #
# both_directions, sample_non_edges
# --------------------------------------------------------------------------- #
@settings(max_examples=60, deadline=None)
@given(st.integers(2, 30), st.data())
def test_both_directions_is_canonical_and_maps_back_to_its_pair(n, data):
    keys = data.draw(st.sets(st.integers(0, n * n - 1).filter(lambda x: x // n < x % n), max_size=2 * n))
    keys = torch.tensor(sorted(keys), dtype=torch.long)
    pairs = decode_undirected(keys, n)
    ei, pair_id = both_directions(pairs, n)
    assert tuple(ei.shape) == (2, 2 * pairs.size(1)) and pair_id.numel() == ei.size(1)
    assert torch.equal(canonical_edge_index(ei, n), ei)
    assert torch.equal(undirected_keys(ei, n), keys[pair_id])


@pytest.mark.parametrize("undirected", [True, False])
@pytest.mark.parametrize("n", [7, 3000])  # enumeration, then rejection sampling (n (n - 1) > 2 ** 22)
def test_sample_non_edges_returns_distinct_fresh_non_loop_keys(n, undirected):
    gen = torch.Generator().manual_seed(0)
    lattice = ring_lattice(n, 2)
    exclude = undirected_keys(lattice, n).unique() if undirected else directed_keys(lattice, n)
    count = 10
    keys = sample_non_edges(n, exclude, count, gen, undirected=undirected)
    assert keys.numel() == count == keys.unique().numel()
    assert not bool(torch.isin(keys, exclude).any())
    pairs = decode_undirected(keys, n) if undirected else decode_directed(keys, n)
    assert not bool((pairs[0] == pairs[1]).any())
    if undirected:
        assert bool((pairs[0] < pairs[1]).all())
    again = sample_non_edges(n, exclude, count, torch.Generator().manual_seed(0), undirected=undirected)
    assert torch.equal(keys, again)


def test_sample_non_edges_returns_fewer_keys_only_when_fewer_exist():
    n = 5
    exclude = undirected_keys(ring_lattice(n, 2), n).unique()  # 5 of the 10 pairs
    keys = sample_non_edges(n, exclude, 100, torch.Generator().manual_seed(1), undirected=True)
    assert keys.sort().values.tolist() == sorted(set(range(n * n)) - set(exclude.tolist()) - {
        u * n + v for u in range(n) for v in range(n) if u >= v
    })


# --------------------------------------------------------------------------- #
# the split modules: free functions, methods and the pickle reducer
# --------------------------------------------------------------------------- #
def test_free_functions_match_the_methods_and_pickles_load():
    import importlib
    import pickle

    from wsfusion.graphs import convert, metrics

    g = ws_cross_modal_graph({"a": 6, "b": 5}, k=4, beta=0.3, seed=2, order="interleaved")
    assert convert.from_networkx(convert.to_networkx(g)) == g == CrossModalGraph.from_networkx(g.to_networkx())
    assert convert.from_scipy(convert.to_scipy(g), dict(g.node_counts)) == g
    assert convert.from_dense_mask(convert.to_dense_mask(g), dict(g.node_counts)) == g
    assert convert.from_edge_index(g.edge_index, dict(g.node_counts)) == g
    assert convert.from_pyg(convert.to_pyg(g)) == g == convert.from_hetero(convert.to_hetero(g))
    assert metrics.stats(g) == g.stats()
    # One implementation: the free functions are the methods.
    for name in ("to_dense_mask", "to_scipy", "to_networkx", "to_pyg", "to_hetero"):
        assert getattr(convert, name) is getattr(CrossModalGraph, name)
    for name in ("from_edge_index", "from_dense_mask", "from_scipy", "from_networkx", "from_pyg", "from_hetero"):
        assert getattr(convert, name) == getattr(CrossModalGraph, name)
    assert CrossModalGraph.stats is metrics.stats
    # The compatibility module is gone (no release shipped it); pickles name the reducer in graph.py.
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("wsfusion.graphs.ws")
    data = pickle.dumps(g, protocol=2)
    assert b"wsfusion.graphs.graph\n_rebuild" in data
    loaded = pickle.loads(data)
    assert loaded == g and torch.equal(loaded.ring_order, g.ring_order) and loaded.order == "interleaved"
