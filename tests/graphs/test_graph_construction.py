"""Deterministic checks of ws_cross_modal_graph / token_graph / CrossModalGraph."""

from __future__ import annotations

import copy
import math
import pickle
import subprocess
import sys

import networkx as nx
import numpy as np
import pytest
import torch

from wsfusion.graphs import CrossModalGraph, token_graph, ws_cross_modal_graph

NOTEBOOK = {"visual": 64, "text": 64, "audio": 64}


def _edge_set(g: CrossModalGraph) -> set[tuple[int, int]]:
    return {(s, d) for s, d in g.edge_index.t().tolist() if s < d}


def _nx_edge_set(G: nx.Graph) -> set[tuple[int, int]]:
    return {(min(u, v), max(u, v)) for u, v in G.edges()}


def test_notebook_mask_is_reproduced() -> None:
    g = ws_cross_modal_graph(NOTEBOOK, k=6, beta=0.3, seed=42)
    ref = nx.watts_strogatz_graph(192, 6, 0.3, seed=42)
    # The notebook's mask: dense adjacency of the networkx graph.
    notebook_mask = torch.tensor(nx.to_numpy_array(ref, nodelist=range(192)), dtype=torch.float32)
    assert torch.equal(g.to_dense_mask(), notebook_mask)
    assert g.num_edges == 576
    assert g.stats()["cross_modal_fraction"] == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("nodes", "k", "beta", "seed"),
    [
        ({"a": 5, "b": 5}, 2, 0.5, 0),
        ({"visual": 20, "text": 17, "audio": 13}, 4, 1.0, 7),
        ({"x": 33}, 8, 0.1, 123),
        ({"a": 1, "b": 60, "c": 39}, 6, 0.0, 1),
        ({"a": 100, "b": 28}, 10, 0.7, 2**31),
        ({"a": 2, "b": 3}, 4, 0.9, 5),  # k = N - 1: complete graph, rewiring always skipped
    ],
)
def test_blocked_order_matches_networkx(nodes: dict, k: int, beta: float, seed: int) -> None:
    n = sum(nodes.values())
    g = ws_cross_modal_graph(nodes, k, beta, seed=seed, order="blocked")
    assert _edge_set(g) == _nx_edge_set(nx.watts_strogatz_graph(n, k, beta, seed=seed))
    assert torch.equal(g.ring_order, torch.arange(n))


def test_interleaved_is_the_same_ws_graph_on_ring_positions() -> None:
    nodes = {"visual": 16, "text": 20, "audio": 25}
    g = ws_cross_modal_graph(nodes, 4, 0.3, seed=9, order="interleaved")
    ring = g.ring_order.tolist()
    ref = nx.watts_strogatz_graph(61, 4, 0.3, seed=9)
    mapped = {tuple(sorted((ring[u], ring[v]))) for u, v in ref.edges()}
    assert _edge_set(g) == mapped


def test_cross_modal_fraction_at_beta_zero() -> None:
    blocked = ws_cross_modal_graph(NOTEBOOK, k=6, beta=0.0, seed=0, order="blocked")
    inter = ws_cross_modal_graph(NOTEBOOK, k=6, beta=0.0, seed=0, order="interleaved")
    # Blocked: only the 1 + 2 + 3 ring edges across each of the 3 block boundaries.
    assert blocked.stats()["cross_modal_fraction"] == pytest.approx(18 / 576)
    # Round-robin a,b,c: ring distances 1 and 2 are cross-modal, distance 3 is not.
    assert inter.stats()["cross_modal_fraction"] == pytest.approx(2 / 3)
    assert inter.ring_order[:6].tolist() == [0, 64, 128, 1, 65, 129]
    pairs = inter.stats()["pair_edges"]
    assert pairs["visual-visual"] == pairs["text-text"] == pairs["audio-audio"] == 64


def test_cross_modal_fraction_grows_with_beta_for_blocked_order() -> None:
    def mean_fraction(beta: float) -> float:
        fr = [ws_cross_modal_graph(NOTEBOOK, 6, beta, seed=s).stats(path_length=False)["cross_modal_fraction"] for s in range(5)]
        return float(np.mean(fr))

    f0, f3, f10 = mean_fraction(0.0), mean_fraction(0.3), mean_fraction(1.0)
    assert f0 < f3 < f10
    assert 0.18 < f3 < 0.28 and 0.6 < f10 < 0.75


def test_seed_none_draws_fresh_graphs_and_records_the_seed() -> None:
    a = ws_cross_modal_graph(NOTEBOOK, 6, 0.3, seed=None)
    b = ws_cross_modal_graph(NOTEBOOK, 6, 0.3, seed=None)
    assert isinstance(a.seed, int) and isinstance(b.seed, int)
    assert a != b
    assert ws_cross_modal_graph(NOTEBOOK, 6, 0.3, seed=a.seed) == a


def test_different_seeds_differ() -> None:
    assert ws_cross_modal_graph(NOTEBOOK, 6, 0.3, seed=1) != ws_cross_modal_graph(NOTEBOOK, 6, 0.3, seed=2)


def test_self_loops() -> None:
    g = ws_cross_modal_graph({"a": 4, "b": 6}, 4, 0.2, seed=0, self_loops=True)
    plain = ws_cross_modal_graph({"a": 4, "b": 6}, 4, 0.2, seed=0)
    assert g.num_self_loops == 10 and g.num_edges == plain.num_edges == 20
    assert g.edge_index.size(1) == 2 * 20 + 10
    assert torch.equal(g.to_dense_mask().diagonal(), torch.ones(10))
    assert g.stats()["num_self_loops"] == 10 and g.stats()["num_edges"] == 20
    assert "self_loops=True" in repr(g)
    # Self loops are same-modality relations and never cross-modal.
    loops = g.edge_index[0] == g.edge_index[1]
    assert not g.is_cross_modal[loops].any()


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(nodes=NOTEBOOK, k=5), "k must be even (got 5): networkx.watts_strogatz_graph would silently use k=4"),
        (dict(nodes=NOTEBOOK, k=0), "k must be at least 2"),
        (dict(nodes=NOTEBOOK, k=-2), "k must be at least 2"),
        (dict(nodes=NOTEBOOK, k=200), "k=200 must be smaller than the number of nodes N=192"),
        (dict(nodes=NOTEBOOK, k=192), "k=192 must be smaller than the number of nodes N=192"),
        (dict(nodes=NOTEBOOK, k=4.0), "k must be an integer, got 4.0 (float)"),
        (dict(nodes=NOTEBOOK, k=True), "k must be an integer, got True (bool)"),
        (dict(nodes=NOTEBOOK, beta=1.5), "beta must be a number in [0, 1], got 1.5"),
        (dict(nodes=NOTEBOOK, beta=-0.1), "beta must be a number in [0, 1], got -0.1"),
        (dict(nodes=NOTEBOOK, beta=math.nan), "beta must be a number in [0, 1], got nan"),
        (dict(nodes=NOTEBOOK, beta=math.inf), "beta must be a number in [0, 1], got inf"),
        (dict(nodes=NOTEBOOK, beta="0.3"), "beta must be a number in [0, 1], got '0.3' (str)"),
        (dict(nodes={}), "nodes must be a non-empty mapping modality -> node count, got an empty mapping"),
        (dict(nodes=[64, 64]), "nodes must be a non-empty mapping modality -> node count, got list"),
        (dict(nodes={"visual": 0, "audio": 0}), "nodes {'visual': 0, 'audio': 0} has no node at all; the graph needs at least 1"),
        (dict(nodes={"visual": 64, "audio": -3}), "modality 'audio' has -3 nodes; node counts must be >= 0"),
        (dict(nodes={"visual": 3, "audio": 0}, k=4), "k=4 must be smaller than the number of nodes N=3"),
        (dict(nodes=NOTEBOOK, vocabulary=("visual", "audio")), "modality 'text' is not in the vocabulary ('visual', 'audio')"),
        (dict(nodes=NOTEBOOK, vocabulary="visual"), "vocabulary must be a sequence of modality names"),
        (dict(nodes=NOTEBOOK, vocabulary={"visual", "text", "audio"}), "vocabulary must be ordered (a tuple or list), got a set"),
        (dict(nodes=NOTEBOOK, vocabulary=("visual", "text", "audio", "text")), "vocabulary repeats the modality 'text'"),
        (dict(nodes=NOTEBOOK, vocabulary=("visual", "text", "audio", "")), "vocabulary entries must be non-empty strings"),
        (dict(nodes={"visual": 64, 3: 64}), "modality names must be strings, got 3 (int)"),
        (dict(nodes={"visual": 64, "": 64}), "modality names must be non-empty strings"),
        (dict(nodes={"visual": 64.0}), "modality 'visual' must have an integer node count, got 64.0 (float)"),
        (dict(nodes={"visual": True, "text": 8}), "modality 'visual' must have an integer node count, got True (bool)"),
        (dict(nodes=NOTEBOOK, order="random"), "order must be one of ('blocked', 'interleaved'), got 'random'"),
        (dict(nodes=NOTEBOOK, seed=-1), "seed must be a non-negative integer or None, got -1"),
        (dict(nodes=NOTEBOOK, seed=1.5), "seed must be a non-negative integer or None, got 1.5"),
        (dict(nodes=NOTEBOOK, self_loops=1), "self_loops must be a bool, got 1"),
    ],
)
def test_invalid_arguments_raise_value_error_with_reason(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        ws_cross_modal_graph(**kwargs)
    assert message in str(info.value)


def test_numpy_scalars_are_accepted() -> None:
    g = ws_cross_modal_graph({"a": np.int64(10), "b": 10}, np.int32(4), np.float32(0.25), seed=np.int64(3))
    assert g == ws_cross_modal_graph({"a": 10, "b": 10}, 4, 0.25, seed=3)
    assert isinstance(g.k, int) and isinstance(g.beta, float) and isinstance(g.seed, int)


@pytest.mark.parametrize(
    ("edge_index", "nodes", "message"),
    [
        ([[0, 1, 1], [1, 0, 2]], {"a": 3}, "edge_index is not symmetric: 1 -> 2 has no reverse edge"),
        ([[0, 1, 0], [1, 0, 1]], {"a": 3}, "edge_index repeats the edge 0 -> 1"),
        ([[0, 5], [5, 0]], {"a": 3}, "edge_index has node ids in [0, 5], outside 0..2"),
        ([[0, -1], [-1, 0]], {"a": 3}, "outside 0..2"),
        ([[0, 1, 1], [1, 0, 1]], {"a": 3}, "self loops must be on every node or on none: found 1 of 3"),
        ([0, 1, 1, 0], {"a": 3}, "edge_index must have shape [2, E], got (4,)"),
        (np.array([[0.0, 1.0], [1.0, 0.0]]), {"a": 3}, "edge_index must hold integers"),
        ([[0, 1], [1, 0]], {}, "nodes must be a non-empty mapping"),
    ],
)
def test_from_edge_index_validates(edge_index, nodes: dict, message: str) -> None:  # noqa: ANN001
    with pytest.raises(ValueError) as info:
        CrossModalGraph.from_edge_index(edge_index, nodes)
    assert message in str(info.value)


def test_from_edge_index_checks_ring_order() -> None:
    with pytest.raises(ValueError, match=r"ring_order must be a permutation of 0\.\.2"):
        CrossModalGraph.from_edge_index([[0, 1], [1, 0]], {"a": 3}, ring_order=[0, 0, 1])


def test_from_edge_index_arbitrary_topology() -> None:
    # A star, as a learned topology might produce: sorted on construction, stats work.
    g = CrossModalGraph.from_edge_index([[1, 0, 2, 0, 3, 0], [0, 1, 0, 2, 0, 3]], {"hub": 1, "leaf": 3})
    assert g.edge_index.tolist() == [[1, 2, 3, 0, 0, 0], [0, 0, 0, 1, 2, 3]]
    assert (g.k, g.beta, g.seed, g.order) == (None, None, None, None)
    s = g.stats()
    assert s["num_edges"] == 3 and s["cross_modal_fraction"] == 1.0 and s["clustering"] == 0.0
    assert s["pair_edges"] == {"hub-hub": 0, "hub-leaf": 3, "leaf-leaf": 0}
    assert s["path_length"] == pytest.approx(nx.average_shortest_path_length(nx.star_graph(3)))


def test_disconnected_graph_stats() -> None:
    g = CrossModalGraph.from_edge_index([[0, 1, 2, 3], [1, 0, 3, 2]], {"a": 2, "b": 2})
    s = g.stats()
    assert s["connected"] is False and s["num_components"] == 2 and s["path_length"] is None
    assert s["cross_modal_fraction"] == 0.0
    empty = CrossModalGraph.from_edge_index(torch.empty(2, 0, dtype=torch.long), {"a": 2})
    assert empty.stats()["cross_modal_fraction"] is None and empty.stats()["num_edges"] == 0


# ---------------------------------------------------------------------------
# the object
# ---------------------------------------------------------------------------
def test_graph_is_immutable() -> None:
    g = ws_cross_modal_graph(NOTEBOOK, 6, 0.3, seed=42)
    before = g.edge_index
    g.edge_index[0, 0] = 5
    g.node_modality[0] = 2
    g.edge_type[0] = 7
    assert torch.equal(g.edge_index, before)
    assert g.node_modality[0] == 0 and g.edge_type[0] == int(g.node_modality[g.edge_index[0, 0]]) * 3
    with pytest.raises(AttributeError, match="immutable"):
        g.k = 4
    with pytest.raises(AttributeError, match="immutable"):
        g._edge_index = before
    with pytest.raises(AttributeError, match="immutable"):
        del g._k
    with pytest.raises(TypeError):
        g.node_slices["visual"] = slice(0, 1)  # type: ignore[index]


def test_node_slices_relations_and_repr() -> None:
    g = ws_cross_modal_graph({"visual": 16, "text": 20, "audio": 25}, 4, 0.3, seed=1, order="interleaved")
    assert dict(g.node_slices) == {"visual": slice(0, 16), "text": slice(16, 36), "audio": slice(36, 61)}
    assert dict(g.node_counts) == {"visual": 16, "text": 20, "audio": 25}
    assert g.num_relations == 9
    assert g.relation_names[:4] == [("visual", "visual"), ("visual", "text"), ("visual", "audio"), ("text", "visual")]
    assert repr(g) == (
        "CrossModalGraph(visual=16, text=20, audio=25; N=61, E=122, k=4, beta=0.3, order='interleaved', seed=1)"
    )


def test_equality_ignores_metadata_but_not_structure() -> None:
    g = ws_cross_modal_graph({"a": 5, "b": 5}, 4, 0.0, seed=0)
    same_edges = CrossModalGraph.from_edge_index(g.edge_index, {"a": 5, "b": 5})
    renamed = CrossModalGraph.from_edge_index(g.edge_index, {"a": 5, "c": 5})
    split = CrossModalGraph.from_edge_index(g.edge_index, {"a": 4, "b": 6})
    assert g == same_edges and hash(g) == hash(same_edges)
    assert g != renamed and g != split
    assert g != "not a graph"


def test_pickle_and_copy() -> None:
    g = ws_cross_modal_graph({"a": 7, "b": 9}, 4, 0.5, seed=3, order="interleaved", self_loops=True)
    for clone in (pickle.loads(pickle.dumps(g)), copy.deepcopy(g), copy.copy(g)):
        assert clone == g and repr(clone) == repr(g)
        assert torch.equal(clone.ring_order, g.ring_order)


def test_node_counts_and_slices_are_built_once_and_read_only() -> None:
    g = ws_cross_modal_graph({"a": 7, "b": 0, "c": 9}, 4, 0.5, seed=3)
    assert g.node_counts is g.node_counts and g.node_slices is g.node_slices  # no new dict per access
    assert dict(g.node_counts) == {"a": 7, "b": 0, "c": 9}
    assert dict(g.node_slices) == {"a": slice(0, 7), "b": slice(7, 7), "c": slice(7, 16)}
    with pytest.raises(TypeError):
        g.node_counts["a"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        g.node_slices["a"] = slice(0, 1)  # type: ignore[index]
    for clone in (pickle.loads(pickle.dumps(g)), copy.deepcopy(g)):
        assert clone.node_counts == g.node_counts and clone.node_slices == g.node_slices
        assert clone.node_counts is clone.node_counts


def test_token_graph() -> None:
    tokens = {"visual": 16, "text": 20, "audio": 25}
    g = token_graph(tokens, k=4, beta=0.2, seed=0)
    assert g == ws_cross_modal_graph(tokens, 4, 0.2, seed=0, order="interleaved")
    assert g.num_nodes == 61 and g.num_edges == 122 and g.order == "interleaved"
    # Token features [B, T, D] (or [T, D]) give the counts from T.
    feats = {"visual": torch.zeros(2, 16, 8), "text": torch.zeros(20, 4), "audio": torch.zeros(2, 25, 3)}
    assert token_graph(feats, k=4, beta=0.2, seed=0) == g
    with pytest.raises(ValueError, match=r"token features of modality 'text' must be \[B, T, D\] or \[T, D\]"):
        token_graph({"visual": 16, "text": torch.zeros(5)})
    with pytest.raises(ValueError, match="tokens must be a non-empty mapping"):
        token_graph([16, 20])
    with pytest.raises(ValueError, match="k must be even"):
        token_graph(tokens, k=3)


def test_token_graph_aligns_relative_positions() -> None:
    # At beta=0 the interleaved ring links each token to tokens of the other
    # modalities at about the same relative position in their sequences.
    g = token_graph({"visual": 16, "text": 20, "audio": 25}, k=6, beta=0.0)
    nm = g.node_modality
    offsets = {m: sl.start for m, sl in enumerate(g.node_slices.values())}
    lengths = list(g.node_counts.values())
    src, dst = g.edge_index
    for s, d in zip(src.tolist(), dst.tolist()):
        ms, md = int(nm[s]), int(nm[d])
        rel_s = (s - offsets[ms] + 0.5) / lengths[ms]
        rel_d = (d - offsets[md] + 0.5) / lengths[md]
        gap = abs(rel_s - rel_d)
        assert min(gap, 1 - gap) < 0.1  # the ring closes: the last tokens meet the first ones


def test_import_is_light() -> None:
    code = (
        "import sys, wsfusion.graphs; "
        "print(sorted(m for m in ('matplotlib', 'networkx', 'scipy', 'torch_geometric') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_small_world_coefficients_on_request() -> None:
    g = ws_cross_modal_graph({"a": 12, "b": 12}, 4, 0.2, seed=0)
    assert "sigma" not in g.stats()
    s = g.stats(small_world=True)
    # networkx's reference graphs depend on insertion order: nodes 0..N-1, then edges in edge_index order.
    G = nx.Graph()
    G.add_nodes_from(range(g.num_nodes))
    G.add_edges_from((u, v) for u, v in g.edge_index.t().tolist() if u < v)
    assert s["sigma"] > 1 and -1 <= s["omega"] <= 1  # small-world by both measures
    assert s["sigma"] == pytest.approx(nx.sigma(G, niter=1, nrand=2, seed=0))
    assert s["omega"] == pytest.approx(nx.omega(G, niter=1, nrand=2, seed=0))
    disconnected = CrossModalGraph.from_edge_index([[0, 1, 2, 3], [1, 0, 3, 2]], {"a": 2, "b": 2})
    s = disconnected.stats(small_world=True)
    assert s["sigma"] is None and s["omega"] is None
