"""The relation vocabulary: fixed relation ids across graphs, 0-node modalities, and PyG batching."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.data import Batch, Data, HeteroData
from torch_geometric.loader import DataLoader

from wsfusion.graphs import CrossModalGraph, plot_graph, plot_mask, token_graph, ws_cross_modal_graph
from wsfusion.graphs.graph import _rebuild
from wsfusion.graphs.pyg import CrossModalData

VOCAB = ("visual", "text", "audio")
NOTEBOOK = {"visual": 64, "text": 64, "audio": 64}
NAMES = ("visual", "text", "audio", "depth", "imu")


def modality_of_nodes(g: CrossModalGraph) -> list[str]:
    """Each node's modality from ``node_slices`` alone (independent of ``node_modality``)."""
    out = [""] * g.num_nodes
    for name, sl in g.node_slices.items():
        for i in range(sl.start, sl.stop):
            out[i] = name
    return out


def assert_ids_follow(g: CrossModalGraph, vocab: tuple[str, ...]) -> None:
    mod = modality_of_nodes(g)
    v = len(vocab)
    src, dst = g.edge_index.tolist()
    expected = [vocab.index(mod[s]) * v + vocab.index(mod[d]) for s, d in zip(src, dst)]
    assert g.edge_type.tolist() == expected
    assert g.num_relations == v * v
    assert g.relation_names == [(a, b) for a in vocab for b in vocab]
    assert [vocab[m] for m in g.node_modality.tolist()] == mod
    assert g.is_cross_modal.tolist() == [mod[s] != mod[d] for s, d in zip(src, dst)]


# --------------------------------------------------------------------------- #
# ids
# --------------------------------------------------------------------------- #
def test_the_issue_example_default_ids_depend_on_the_modality_set_a_vocabulary_fixes_them() -> None:
    two = ws_cross_modal_graph({"visual": 6, "audio": 6}, 4, 0.3, seed=0)
    three = ws_cross_modal_graph({"visual": 4, "text": 4, "audio": 4}, 4, 0.3, seed=0)
    swapped = ws_cross_modal_graph({"audio": 6, "visual": 6}, 4, 0.3, seed=0)
    # Default (unchanged): the vocabulary is each graph's own modality list.
    assert two.vocabulary == two.modalities == ("visual", "audio")
    assert two.relation_names[3] == ("audio", "audio")
    assert three.relation_names[3] == ("text", "visual")
    assert swapped.relation_names[1] == ("audio", "visual")
    # One vocabulary: one id per pair in every graph.
    graphs = [
        ws_cross_modal_graph(nodes, 4, 0.3, seed=0, vocabulary=VOCAB)
        for nodes in ({"visual": 6, "audio": 6}, {"visual": 4, "text": 4, "audio": 4}, {"audio": 6, "visual": 6})
    ]
    for g in graphs:
        assert g.vocabulary == VOCAB and g.num_relations == 9
        assert g.relation_names[8] == ("audio", "audio") and g.relation_names[2] == ("visual", "audio")
        assert_ids_follow(g, VOCAB)
    assert graphs[0].modalities == ("visual", "audio") and graphs[2].modalities == ("audio", "visual")
    # Node ids stay blocked in the order of ``nodes``; node_modality indexes the vocabulary.
    assert graphs[2].node_modality.tolist() == [2] * 6 + [0] * 6


def test_default_vocabulary_keeps_the_old_ids() -> None:
    g = ws_cross_modal_graph(NOTEBOOK, 6, 0.3, seed=42)
    nm = torch.repeat_interleave(torch.arange(3), torch.tensor([64, 64, 64]))
    ei = g.edge_index
    assert g.vocabulary == g.modalities
    assert torch.equal(g.node_modality, nm)
    assert torch.equal(g.edge_type, nm[ei[0]] * 3 + nm[ei[1]])
    assert repr(g) == (
        "CrossModalGraph(visual=64, text=64, audio=64; N=192, E=576, k=6, beta=0.3, order='blocked', seed=42)"
    )


def test_a_vocabulary_changes_no_edge_and_no_node_id() -> None:
    vocab = ("depth", "audio", "visual", "text")
    for order in ("blocked", "interleaved"):
        plain = ws_cross_modal_graph(NOTEBOOK, 6, 0.3, seed=42, order=order)
        fixed = ws_cross_modal_graph(NOTEBOOK, 6, 0.3, seed=42, order=order, vocabulary=vocab)
        assert torch.equal(plain.edge_index, fixed.edge_index)
        assert torch.equal(plain.ring_order, fixed.ring_order)
        assert dict(plain.node_slices) == dict(fixed.node_slices)
        assert plain.stats() == fixed.stats()
        assert plain != fixed  # different relation ids
        assert_ids_follow(fixed, vocab)


def test_every_constructor_takes_the_vocabulary() -> None:
    g = ws_cross_modal_graph({"visual": 5, "audio": 5}, 4, 0.5, seed=1, vocabulary=VOCAB)
    nodes = dict(g.node_counts)
    built = [
        CrossModalGraph(g.edge_index, nodes, vocabulary=VOCAB),
        CrossModalGraph.from_edge_index(g.edge_index, nodes, vocabulary=list(VOCAB)),
        CrossModalGraph.from_dense_mask(g.to_dense_mask(), nodes, vocabulary=VOCAB),
        CrossModalGraph.from_scipy(g.to_scipy(), nodes, vocabulary=VOCAB),
        token_graph({"visual": 5, "audio": torch.zeros(2, 5, 3)}, 4, 0.5, seed=1, order="blocked", vocabulary=VOCAB),
    ]
    for other in built:
        assert other == g and other.vocabulary == VOCAB
        assert torch.equal(other.edge_type, g.edge_type)


@pytest.mark.parametrize(
    "build",
    [
        lambda: ws_cross_modal_graph({"visual": 4, "depth": 4}, 4, vocabulary=VOCAB),
        lambda: token_graph({"visual": 4, "depth": 4}, 4, vocabulary=VOCAB),
        lambda: CrossModalGraph.from_edge_index([[0, 1], [1, 0]], {"visual": 1, "depth": 1}, vocabulary=VOCAB),
        lambda: CrossModalGraph(torch.empty(2, 0, dtype=torch.long), {"depth": 2}, vocabulary=VOCAB),
    ],
)
def test_a_modality_outside_the_vocabulary_is_named(build) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match=r"modality 'depth' is not in the vocabulary \('visual', 'text', 'audio'\)"):
        build()


def test_equality_hash_pickle_copy_and_repr_keep_the_vocabulary() -> None:
    g = ws_cross_modal_graph({"audio": 5, "text": 0, "visual": 4}, 4, 0.3, seed=2, order="interleaved", vocabulary=VOCAB)
    assert repr(g) == (
        "CrossModalGraph(audio=5, text=0, visual=4; N=9, E=18, k=4, beta=0.3, order='interleaved', seed=2, "
        "vocabulary=('visual', 'text', 'audio'))"
    )
    for clone in (pickle.loads(pickle.dumps(g)), copy.deepcopy(g), copy.copy(g)):
        assert clone == g and hash(clone) == hash(g) and clone.vocabulary == VOCAB and repr(clone) == repr(g)
    default = CrossModalGraph.from_edge_index(g.edge_index, dict(g.node_counts))
    assert default != g and default.vocabulary == ("audio", "text", "visual")
    # The reducer of graphs pickled before vocabularies existed takes 7 arguments.
    old = _rebuild(g.edge_index, dict(g.node_counts), 4, 0.3, 2, "interleaved", g.ring_order)
    assert old == default


# --------------------------------------------------------------------------- #
# 0-node modalities
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("order", ["blocked", "interleaved"])
def test_a_modality_may_have_zero_nodes(order: str) -> None:
    g = ws_cross_modal_graph({"visual": 6, "text": 0, "audio": 5}, 4, 0.4, seed=3, order=order)
    assert g.num_nodes == 11 and g.num_edges == 22
    assert g.modalities == g.vocabulary == VOCAB and g.num_relations == 9
    assert dict(g.node_counts) == {"visual": 6, "text": 0, "audio": 5}
    assert dict(g.node_slices) == {"visual": slice(0, 6), "text": slice(6, 6), "audio": slice(6, 11)}
    assert 1 not in g.node_modality.tolist()
    assert not any("text" in pair for pair in (g.relation_names[t] for t in g.edge_type.tolist()))
    assert_ids_follow(g, VOCAB)
    assert sorted(g.ring_order.tolist()) == list(range(11))
    s = g.stats()
    assert s["pair_edges"]["visual-text"] == s["pair_edges"]["text-text"] == s["pair_edges"]["text-audio"] == 0
    # The same edges as without the empty modality; only the ids differ.
    without = ws_cross_modal_graph({"visual": 6, "audio": 5}, 4, 0.4, seed=3, order=order)
    assert torch.equal(without.edge_index, g.edge_index)
    assert without.num_relations == 4


def test_zero_nodes_rules() -> None:
    with pytest.raises(ValueError, match="has no node at all"):
        ws_cross_modal_graph({"visual": 0, "text": 0})
    with pytest.raises(ValueError, match=r"k=4 must be smaller than the number of nodes N=4"):
        ws_cross_modal_graph({"visual": 4, "text": 0}, k=4)
    one = CrossModalGraph.from_edge_index(torch.empty(2, 0, dtype=torch.long), {"a": 0, "b": 1})
    assert one.num_nodes == 1 and one.num_edges == 0
    # Token features with T = 0.
    g = token_graph({"visual": torch.zeros(2, 8, 4), "text": torch.zeros(2, 0, 4), "audio": 7}, 4, 0.2, seed=0)
    assert dict(g.node_counts) == {"visual": 8, "text": 0, "audio": 7} and g.num_relations == 9


def test_zero_node_modalities_plot(tmp_path) -> None:  # noqa: ANN001
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = ws_cross_modal_graph({"visual": 6, "text": 0, "audio": 5}, 4, 0.4, seed=3, order="interleaved")
    sub = ws_cross_modal_graph({"audio": 5}, 2, 0.4, seed=3, vocabulary=VOCAB)
    for graph in (g, sub):
        plot_mask(graph, tmp_path / "mask.png")
        plot_graph(graph, tmp_path / "ring.png")
    assert (tmp_path / "mask.png").stat().st_size > 0
    plt.close("all")


# --------------------------------------------------------------------------- #
# PyG
# --------------------------------------------------------------------------- #
def graphs_of_one_vocabulary() -> list[CrossModalGraph]:
    return [
        ws_cross_modal_graph({"visual": 6, "audio": 6}, 4, 0.3, seed=0, vocabulary=VOCAB),
        ws_cross_modal_graph({"visual": 4, "text": 4, "audio": 4}, 4, 0.5, seed=1, vocabulary=VOCAB),
        ws_cross_modal_graph({"audio": 3, "text": 0, "visual": 5}, 4, 0.5, seed=2, order="interleaved", vocabulary=VOCAB),
        ws_cross_modal_graph({"text": 7}, 2, 0.0, seed=3, vocabulary=VOCAB, self_loops=True),
    ]


def test_to_pyg_carries_the_vocabulary_and_round_trips() -> None:
    for g in graphs_of_one_vocabulary():
        data = g.to_pyg()
        assert isinstance(data, CrossModalData) and isinstance(data, Data)
        assert data.vocabulary == VOCAB and data.modalities == list(g.modalities)
        assert data.num_relations == 9
        assert torch.equal(data.edge_type, g.edge_type) and torch.equal(data.node_modality, g.node_modality)
        back = CrossModalGraph.from_pyg(data)
        assert back == g and back.vocabulary == VOCAB and dict(back.node_counts) == dict(g.node_counts)
        assert pickle.loads(pickle.dumps(data)).vocabulary == VOCAB


def test_a_batch_of_one_vocabulary_keeps_every_relation_id() -> None:
    graphs = graphs_of_one_vocabulary()
    batch = Batch.from_data_list([g.to_pyg() for g in graphs])
    assert batch.num_graphs == len(graphs) and batch.num_relations == 9
    assert batch.vocabulary == [VOCAB] * len(graphs)
    # The edge_type of each batched edge is voc(source modality) * V + voc(target modality).
    node_mod = [m for g in graphs for m in modality_of_nodes(g)]
    src, dst = batch.edge_index.tolist()
    assert batch.edge_type.tolist() == [VOCAB.index(node_mod[s]) * 3 + VOCAB.index(node_mod[d]) for s, d in zip(src, dst)]
    assert [VOCAB[m] for m in batch.node_modality.tolist()] == node_mod
    assert torch.equal(batch.edge_type, torch.cat([g.edge_type for g in graphs]))
    # Each graph comes back.
    assert [CrossModalGraph.from_pyg(d) for d in batch.to_data_list()] == graphs
    assert CrossModalGraph.from_pyg(batch.get_example(2)) == graphs[2]
    # Through a DataLoader too.
    loaded = next(iter(DataLoader([g.to_pyg() for g in graphs], batch_size=len(graphs))))
    assert torch.equal(loaded.edge_type, batch.edge_type) and torch.equal(loaded.edge_index, batch.edge_index)


def test_batching_different_vocabularies_raises_naming_both() -> None:
    fixed = ws_cross_modal_graph({"visual": 6, "audio": 6}, 4, vocabulary=VOCAB).to_pyg()
    default = ws_cross_modal_graph({"visual": 6, "audio": 6}, 4).to_pyg()  # vocabulary ('visual', 'audio')
    message = (
        r"cannot batch CrossModalGraphs with different relation vocabularies: graph 0 has "
        r"\('visual', 'text', 'audio'\), graph 2 has \('visual', 'audio'\)"
    )
    with pytest.raises(ValueError, match=message):
        Batch.from_data_list([fixed, fixed, default])
    with pytest.raises(ValueError, match=message):
        next(iter(DataLoader([fixed, fixed, default], batch_size=3)))
    other_order = ws_cross_modal_graph({"visual": 6, "audio": 6}, 4, vocabulary=("audio", "text", "visual")).to_pyg()
    with pytest.raises(ValueError, match="different relation vocabularies"):
        Batch.from_data_list([fixed, other_order])
    # Batches of batches are checked per graph.
    with pytest.raises(ValueError, match="different relation vocabularies"):
        Batch.from_data_list([Batch.from_data_list([fixed]), Batch.from_data_list([default])])
    Batch.from_data_list([Batch.from_data_list([fixed]), Batch.from_data_list([fixed])])


def test_from_pyg_refuses_a_batch_and_says_what_to_call() -> None:
    batch = Batch.from_data_list([g.to_pyg() for g in graphs_of_one_vocabulary()])
    with pytest.raises(
        ValueError,
        match=r"from_pyg takes one graph but was given a Batch of 4 graphs; convert each graph: "
        r"\[from_pyg\(d\) for d in batch.to_data_list\(\)\], or from_pyg\(batch.get_example\(i\)\) for graph i",
    ):
        CrossModalGraph.from_pyg(batch)
    plain = Batch.from_data_list([Data(edge_index=torch.tensor([[0, 1], [1, 0]]), num_nodes=2)] * 3)
    with pytest.raises(ValueError, match="a Batch of 3 graphs"):
        CrossModalGraph.from_pyg(plain, {"a": 2})


def test_from_pyg_reads_data_without_a_vocabulary_and_checks_it() -> None:
    g = ws_cross_modal_graph({"a": 4, "b": 5}, 4, 0.3, seed=0)
    old = Data(edge_index=g.edge_index, node_modality=g.node_modality, modalities=["a", "b"], num_nodes=9)
    assert CrossModalGraph.from_pyg(old) == g
    wider = CrossModalGraph.from_pyg(old, vocabulary=("a", "b", "c"))  # node_modality 0 / 1 still mean a / b
    assert wider.vocabulary == ("a", "b", "c") and torch.equal(wider.edge_index, g.edge_index)
    assert CrossModalGraph.from_pyg(Data(edge_index=g.edge_index, num_nodes=9), {"a": 4, "b": 5}) == g
    with pytest.raises(ValueError, match="nodes is required"):
        CrossModalGraph.from_pyg(Data(edge_index=g.edge_index, num_nodes=9))
    with pytest.raises(ValueError, match=r"counts sum to 8, data has 9 nodes"):
        CrossModalGraph.from_pyg(Data(edge_index=g.edge_index, num_nodes=9), {"a": 4, "b": 4})
    shuffled = old.clone()
    shuffled.node_modality = g.node_modality.flip(0)
    with pytest.raises(ValueError, match="data.node_modality must be blocked in the order of data.modalities"):
        CrossModalGraph.from_pyg(shuffled)


# --------------------------------------------------------------------------- #
# HeteroData
# --------------------------------------------------------------------------- #
def test_to_hetero_has_one_node_type_per_vocabulary_entry() -> None:
    graphs = graphs_of_one_vocabulary()
    metadata = {(tuple(h.node_types), tuple(h.edge_types)) for h in (g.to_hetero() for g in graphs)}
    assert metadata == {(VOCAB, tuple((s, "ws", d) for s in VOCAB for d in VOCAB))}  # the same for every graph
    g = graphs[2]  # audio=3, text=0, visual=5
    het = g.to_hetero()
    assert [het[m].num_nodes for m in VOCAB] == [5, 0, 3]
    assert het.modalities == ["audio", "text", "visual"] and het.vocabulary == VOCAB
    for r, (s, rel, d) in enumerate(het.edge_types):
        local = het[s, rel, d].edge_index
        assert local.size(1) == int((g.edge_type == r).sum())
        if local.numel():
            assert local[0].max() < het[s].num_nodes and local[1].max() < het[d].num_nodes
    for graph in graphs:
        assert CrossModalGraph.from_hetero(graph.to_hetero()) == graph
    # A HeteroData without the graph-level attributes: node types are the modalities.
    plain = HeteroData()
    plain["x"].num_nodes, plain["y"].num_nodes = 2, 0
    plain["x", "ws", "x"].edge_index = torch.tensor([[0, 1], [1, 0]])
    back = CrossModalGraph.from_hetero(plain)
    assert back.modalities == back.vocabulary == ("x", "y") and dict(back.node_counts) == {"x": 2, "y": 0}


# --------------------------------------------------------------------------- #
# properties
# --------------------------------------------------------------------------- #
@st.composite
def graphs_sharing_a_vocabulary(draw: st.DrawFn) -> tuple[tuple[str, ...], list[dict[str, int]], list[int]]:
    vocab = tuple(draw(st.permutations(NAMES))[: draw(st.integers(1, len(NAMES)))])
    node_sets = []
    for _ in range(draw(st.integers(2, 4))):
        chosen = draw(st.lists(st.sampled_from(vocab), min_size=1, max_size=len(vocab), unique=True))
        counts = draw(st.lists(st.integers(0, 12), min_size=len(chosen), max_size=len(chosen)))
        if sum(counts) < 3:  # k >= 2 needs N >= 3
            counts[draw(st.integers(0, len(chosen) - 1))] += 3
        node_sets.append(dict(zip(chosen, counts)))
    ks = [2 * draw(st.integers(1, (sum(n.values()) - 1) // 2)) for n in node_sets]
    return vocab, node_sets, ks


@settings(max_examples=80, deadline=None)
@given(graphs_sharing_a_vocabulary(), st.sampled_from(["blocked", "interleaved"]), st.floats(0.0, 1.0), st.integers(0, 2**16))
def test_relation_ids_agree_with_the_vocabulary_in_every_graph(case, order: str, beta: float, seed: int) -> None:  # noqa: ANN001
    vocab, node_sets, ks = case
    v = len(vocab)
    graphs = [
        ws_cross_modal_graph(nodes, k, beta, seed=seed, order=order, vocabulary=vocab) for nodes, k in zip(node_sets, ks)
    ]
    pair_ids: dict[tuple[str, str], set[int]] = {}
    for g, nodes in zip(graphs, node_sets):
        assert g.vocabulary == vocab and g.modalities == tuple(nodes) and g.num_relations == v * v
        assert dict(g.node_counts) == nodes and g.num_nodes == sum(nodes.values())
        et = g.edge_type
        assert et.numel() == 0 or (int(et.min()) >= 0 and int(et.max()) < v * v)
        assert_ids_follow(g, vocab)
        mod = modality_of_nodes(g)
        for s, d, t in zip(*g.edge_index.tolist(), et.tolist()):
            pair_ids.setdefault((mod[s], mod[d]), set()).add(t)
    # The same (source, target) pair has the same id in every graph.
    assert all(len(ids) == 1 for ids in pair_ids.values())
    assert all(ids == {vocab.index(a) * v + vocab.index(b)} for (a, b), ids in pair_ids.items())
    # Batching keeps them.
    batch = Batch.from_data_list([g.to_pyg() for g in graphs])
    assert torch.equal(batch.edge_type, torch.cat([g.edge_type for g in graphs]))
    assert [CrossModalGraph.from_pyg(d) for d in batch.to_data_list()] == graphs
    assert [CrossModalGraph.from_hetero(g.to_hetero()) for g in graphs] == graphs
    assert [CrossModalGraph.from_networkx(g.to_networkx()) for g in graphs] == graphs
