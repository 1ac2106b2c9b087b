"""``from_networkx``: modality attributes, any hashable labels, directed graphs, clear count errors."""

from __future__ import annotations

import random
import warnings

import networkx as nx
import pytest
import torch

from wsfusion.graphs import CrossModalGraph, ws_cross_modal_graph
from wsfusion.graphs.convert import from_networkx

VOCAB = ("visual", "text", "audio")
NOTEBOOK = {"visual": 64, "text": 64, "audio": 64}


def edge_set(g: CrossModalGraph) -> set[tuple[int, int]]:
    return {(s, d) for s, d in g.edge_index.t().tolist()}


@pytest.mark.parametrize(
    "graph",
    [
        ws_cross_modal_graph(NOTEBOOK, 6, 0.3, seed=42),
        ws_cross_modal_graph({"audio": 5, "text": 0, "visual": 6}, 4, 0.5, seed=1, order="interleaved", vocabulary=VOCAB),
        ws_cross_modal_graph({"visual": 4, "depth": 5}, 4, 0.2, seed=2, self_loops=True),
    ],
)
def test_round_trip(graph: CrossModalGraph) -> None:
    back = from_networkx(graph.to_networkx())
    assert back == graph
    assert back.vocabulary == graph.vocabulary and dict(back.node_counts) == dict(graph.node_counts)
    assert (back.k, back.beta, back.seed, back.order) == (graph.k, graph.beta, graph.seed, graph.order)
    assert torch.equal(back.ring_order, graph.ring_order)
    assert CrossModalGraph.from_networkx(graph.to_networkx()) == graph


def test_nodes_come_from_the_modality_attribute() -> None:
    g = ws_cross_modal_graph({"visual": 5, "text": 4, "audio": 3}, 4, 0.3, seed=0)
    G = g.to_networkx()
    G.graph.clear()  # no node_counts: only the node attributes are left
    back = from_networkx(G)
    assert back == g
    # With a vocabulary, the modalities are grouped in vocabulary order.
    reordered, mapping = from_networkx(G, vocabulary=("audio", "visual", "text", "depth"), return_mapping=True)
    assert reordered.modalities == ("audio", "visual", "text")
    assert dict(reordered.node_counts) == {"audio": 3, "visual": 5, "text": 4}
    assert reordered.vocabulary == ("audio", "visual", "text", "depth")
    assert [mapping[i] for i in range(12)] == [3, 4, 5, 6, 7, 8, 9, 10, 11, 0, 1, 2]
    assert edge_set(reordered) == {(mapping[s], mapping[d]) for s, d in edge_set(g)}
    # Without a vocabulary, in the order the modalities first appear.
    H = nx.Graph()
    H.add_nodes_from([(0, {"modality": "b"}), (1, {"modality": "a"}), (2, {"modality": "b"})])
    H.add_edges_from([(0, 1), (1, 2)])
    h = from_networkx(H)
    assert h.modalities == ("b", "a") and dict(h.node_counts) == {"b": 2, "a": 1}
    assert edge_set(h) == {(0, 2), (2, 0), (1, 2), (2, 1)}  # nodes 0, 2 (b) -> 0, 1; node 1 (a) -> 2


def test_any_hashable_labels_grouped_by_modality_then_graph_order() -> None:
    G = nx.Graph()
    G.add_node(("cam", 1), modality="visual")
    G.add_node("word-0", modality="text")
    G.add_node(("cam", 0), modality="visual")
    G.add_node("mic", modality="audio")
    G.add_node("word-1", modality="text")
    G.add_edges_from([(("cam", 1), "word-0"), ("word-0", "mic"), (("cam", 0), "word-1"), ("mic", ("cam", 0))])
    g, mapping = from_networkx(G, vocabulary=VOCAB, return_mapping=True)
    assert mapping == {("cam", 1): 0, ("cam", 0): 1, "word-0": 2, "word-1": 3, "mic": 4}
    assert dict(g.node_counts) == {"visual": 2, "text": 2, "audio": 1} and g.vocabulary == VOCAB
    expected = {(mapping[u], mapping[v]) for u, v in G.edges()}
    assert edge_set(g) == expected | {(v, u) for u, v in expected}
    # The same graph with nodes= in another block order.
    h, mapping = from_networkx(G, {"audio": 1, "text": 2, "visual": 2}, return_mapping=True)
    assert mapping == {"mic": 0, "word-0": 1, "word-1": 2, ("cam", 1): 3, ("cam", 0): 4}
    assert h.modalities == h.vocabulary == ("audio", "text", "visual")


def test_unlabelled_graphs_keep_integer_ids() -> None:
    # A plain networkx graph labelled 0..N-1 (the notebook's) keeps its ids, whatever the insertion order.
    ref = nx.watts_strogatz_graph(192, 6, 0.3, seed=42)
    assert from_networkx(ref, NOTEBOOK) == ws_cross_modal_graph(NOTEBOOK, 6, 0.3, seed=42)
    shuffled = nx.Graph()
    nodes = list(ref.nodes)
    random.Random(0).shuffle(nodes)
    shuffled.add_nodes_from(nodes)
    shuffled.add_edges_from(ref.edges())
    assert from_networkx(shuffled, NOTEBOOK) == ws_cross_modal_graph(NOTEBOOK, 6, 0.3, seed=42)
    # Other labels without attributes: graph order, blocks by position.
    P = nx.path_graph(["x", "y", "z"])
    p, mapping = from_networkx(P, {"a": 1, "b": 2}, return_mapping=True)
    assert mapping == {"x": 0, "y": 1, "z": 2} and edge_set(p) == {(0, 1), (1, 0), (1, 2), (2, 1)}


def test_interleaved_modality_attributes_are_regrouped() -> None:
    G = nx.cycle_graph(6)
    nx.set_node_attributes(G, {i: ("a" if i % 2 == 0 else "b") for i in range(6)}, "modality")
    g, mapping = from_networkx(G, return_mapping=True)
    assert mapping == {0: 0, 2: 1, 4: 2, 1: 3, 3: 4, 5: 5}
    assert dict(g.node_counts) == {"a": 3, "b": 3}
    assert g.is_cross_modal.all()  # a cycle alternating a, b: every edge crosses


def test_directed_graphs_are_symmetrised_with_a_warning() -> None:
    D = nx.DiGraph([(0, 1), (1, 2), (2, 1)])
    with pytest.warns(UserWarning, match=r"the graph is directed and 1 of its 3 edges have no reverse edge; symmetrising"):
        g = from_networkx(D, {"a": 3})
    assert edge_set(g) == {(0, 1), (1, 0), (1, 2), (2, 1)}
    # A directed graph that is already symmetric converts silently.
    S = nx.DiGraph([(0, 1), (1, 0)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert from_networkx(S, {"a": 2}) == CrossModalGraph.from_edge_index([[0, 1], [1, 0]], {"a": 2})
    # The exported graph as a DiGraph round-trips too.
    w = ws_cross_modal_graph({"a": 5, "b": 5}, 4, 0.3, seed=0)
    assert from_networkx(w.to_networkx().to_directed()) == w


@pytest.mark.parametrize(
    ("make", "nodes", "message"),
    [
        (lambda: nx.path_graph(12), {"a": 5, "b": 6}, r"nodes \{'a': 5, 'b': 6\}: counts sum to 11, the graph has 12 nodes"),
        (lambda: nx.path_graph(12), {"a": 7, "b": 6}, r"counts sum to 13, the graph has 12 nodes"),
        (lambda: nx.path_graph(["x", "y"]), {"a": 3}, r"counts sum to 3, the graph has 2 nodes"),
        (lambda: nx.path_graph(3), None, r"nodes is required: the networkx graph has neither 'modality' node attributes"),
    ],
)
def test_count_errors(make, nodes, message: str) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match=message):
        from_networkx(make(), nodes)


def test_modality_attribute_errors() -> None:
    G = nx.path_graph(3)
    G.nodes[0]["modality"] = "a"
    with pytest.raises(ValueError, match=r"node 1 has no 'modality' attribute but 1 of the 3 nodes have one"):
        from_networkx(G, {"a": 3})
    nx.set_node_attributes(G, {0: "a", 1: "a", 2: "c"}, "modality")
    with pytest.raises(ValueError, match=r"node 2 has modality 'c', which is not in nodes \['a', 'b'\]"):
        from_networkx(G, {"a": 2, "b": 1})
    with pytest.raises(ValueError, match=r"nodes gives modality 'a' 1 nodes, the graph has 2 nodes with modality 'a'"):
        from_networkx(G, {"a": 1, "c": 2})
    with pytest.raises(ValueError, match=r"modality 'c' of the networkx nodes is not in the vocabulary \('a', 'b'\)"):
        from_networkx(G, vocabulary=("a", "b"))
    with pytest.raises(ValueError, match=r"modality 'c' is not in the vocabulary \('a', 'b'\)"):
        from_networkx(G, {"a": 2, "c": 1}, vocabulary=("a", "b"))
