"""The notebook's seed-42 mask, pinned by stored hashes rather than by calling networkx.

``test_graph_construction.py`` compares ``ws_cross_modal_graph`` with
``networkx.watts_strogatz_graph`` at test time, so if a networkx release
changed its generator (or its use of the seed), the library and the reference
would move together and nothing would fail, yet the notebook's mask would be
lost. The hashes below were computed once from
``networkx.watts_strogatz_graph(192, 6, 0.3, seed=42)`` (networkx 3.6.1; the
canonical edge list equals wsfusion's at that version) and are compared here
without importing networkx.
"""

from __future__ import annotations

import hashlib

import torch

from wsfusion.graphs import ws_cross_modal_graph

NOTEBOOK = {"visual": 64, "text": 64, "audio": 64}

#: sha256 of the canonical undirected edge list: one ``"u v\n"`` line per edge,
#: ``u < v``, sorted.
EDGE_SET_SHA256 = "7664f86568aff0720f2d860b4d96081b3e8ff57e5759cbeb54152375c3aa7482"
#: sha256 of ``edge_index`` as stored: one ``"source target\n"`` line per column,
#: in the contract's order (sorted by target, then source).
EDGE_INDEX_SHA256 = "0cc0bacaf760d7b5f3e33ab5caccfef3dc740973d29629cd1158de57ba13bc48"
#: sha256 of ``to_dense_mask()`` as row-major uint8 ``[192, 192]`` bytes.
DENSE_MASK_SHA256 = "24bdea809f16edae208104280392705560c06cf57b91d4baed1cb93f98620002"
#: A readable excerpt of the pinned set: node 0's neighbours.
NODE_0_NEIGHBOURS = [1, 30, 104, 172, 189, 190, 191]


def canonical_edge_list(edge_index: torch.Tensor) -> str:
    """One ``"u v"`` line per undirected edge, ``u < v``, sorted: independent of column order and direction."""
    pairs = sorted({(min(s, t), max(s, t)) for s, t in edge_index.t().tolist() if s != t})
    return "".join(f"{u} {v}\n" for u, v in pairs)


def sha256(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def notebook_graph():
    return ws_cross_modal_graph(NOTEBOOK, k=6, beta=0.3, seed=42)


def test_notebook_edge_set_is_pinned() -> None:
    g = notebook_graph()
    text = canonical_edge_list(g.edge_index)
    assert len(text.splitlines()) == 576 == g.num_edges
    assert sha256(text) == EDGE_SET_SHA256, (
        "the seed-42 notebook graph changed: ws_cross_modal_graph(NOTEBOOK, k=6, beta=0.3, seed=42) no longer "
        "gives the notebook's mask (a networkx release or a builder change altered the edges)"
    )
    src, dst = g.edge_index
    assert sorted(src[dst == 0].tolist()) == NODE_0_NEIGHBOURS


def test_notebook_edge_index_layout_is_pinned() -> None:
    g = notebook_graph()
    stored = "".join(f"{s} {t}\n" for s, t in g.edge_index.t().tolist())
    assert sha256(stored) == EDGE_INDEX_SHA256


def test_notebook_dense_mask_is_pinned() -> None:
    mask = notebook_graph().to_dense_mask()
    assert mask.shape == (192, 192)
    assert sha256(mask.to(torch.uint8).contiguous().numpy().tobytes()) == DENSE_MASK_SHA256


def test_canonical_form_ignores_column_order_and_direction() -> None:
    # The pin must only depend on the edge set, not on how edge_index happens to be stored.
    g = notebook_graph()
    perm = torch.randperm(g.edge_index.shape[1], generator=torch.Generator().manual_seed(0))
    shuffled = g.edge_index[:, perm]
    one_direction = g.edge_index[:, g.edge_index[0] < g.edge_index[1]].flip(0)
    reference = canonical_edge_list(g.edge_index)
    assert canonical_edge_list(shuffled) == reference
    assert canonical_edge_list(one_direction) == reference
    # ... and a different edge set hashes differently.
    other = ws_cross_modal_graph(NOTEBOOK, k=6, beta=0.3, seed=43)
    assert sha256(canonical_edge_list(other.edge_index)) != EDGE_SET_SHA256
