r"""The PyG data object of a :class:`~wsfusion.graphs.CrossModalGraph`, which batches only within one vocabulary.

:func:`~wsfusion.graphs.convert.to_pyg` returns a :class:`CrossModalData`.
Batching it with ``torch_geometric.data.Batch.from_data_list`` or a
``torch_geometric.loader.DataLoader`` concatenates ``edge_type`` and
``node_modality`` unchanged (they are ids into the vocabulary, not node
indices, so they are never incremented), and refuses graphs whose
vocabularies differ: their relation ids would mean different modality pairs.

This module imports ``torch_geometric``; ``wsfusion.graphs`` imports it only
when :func:`~wsfusion.graphs.convert.to_pyg` or
:func:`~wsfusion.graphs.convert.from_pyg` is called.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch_geometric.data import Batch, Data

__all__ = ["CrossModalData", "check_batch_vocabulary"]

#: The attributes ``Batch.from_data_list`` sets once the stores are collated.
_BATCH_KEYS = frozenset({"_num_graphs", "_slice_dict", "_inc_dict"})


class CrossModalData(Data):
    r"""A :class:`torch_geometric.data.Data` holding one :class:`~wsfusion.graphs.CrossModalGraph`.

    Attributes written by :func:`~wsfusion.graphs.convert.to_pyg`:

    * ``edge_index`` (LongTensor ``[2, E]``), ``num_nodes``;
    * ``edge_type`` (LongTensor ``[E]``): :math:`\mathrm{voc}(s) \cdot V +
      \mathrm{voc}(t)`, in :math:`[0, V^2)`;
    * ``node_modality`` (LongTensor ``[N]``): vocabulary index of each node;
    * ``vocabulary`` (tuple of :math:`V` names) and ``modalities`` (list of
      the graph's own modality names, in node-id order, 0-node ones included).

    Batching (``Batch.from_data_list``, ``DataLoader``): ``edge_index`` is
    shifted by the node counts as usual; ``edge_type`` and
    ``node_modality`` are concatenated as they are, so they stay correct for
    graphs with different modality sets built with one vocabulary.  The
    batch holds ``vocabulary`` and ``modalities`` as lists, one entry per
    graph.  Graphs with different vocabularies raise ``ValueError`` naming
    both (unless ``"vocabulary"`` is in ``exclude_keys``).

    Example:
        >>> from torch_geometric.data import Batch
        >>> from wsfusion.graphs import ws_cross_modal_graph
        >>> VOCAB = ("visual", "text", "audio")
        >>> a = ws_cross_modal_graph({"visual": 6, "audio": 6}, k=4, vocabulary=VOCAB).to_pyg()
        >>> b = ws_cross_modal_graph({"visual": 4, "text": 4, "audio": 4}, k=4, vocabulary=VOCAB).to_pyg()
        >>> batch = Batch.from_data_list([a, b])
        >>> batch.num_graphs, batch.num_relations
        (2, 9)
    """

    def __inc__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        # Ids into the vocabulary, not node indices: never shifted.
        if key in ("edge_type", "node_modality"):
            return 0
        return super().__inc__(key, value, *args, **kwargs)

    def __setattr__(self, key: str, value: Any) -> None:
        # ``Batch.from_data_list`` sets these right after collating the
        # stores, so the batch's ``vocabulary`` (one entry per graph) is there.
        if key in _BATCH_KEYS and isinstance(self, Batch):
            check_batch_vocabulary(self)
        super().__setattr__(key, value)

    @property
    def num_relations(self) -> int | None:
        """``V ** 2`` (of the first graph for a batch, whose graphs share it); ``None`` without a vocabulary."""
        vocabs = list(_vocabularies(self._store.get("vocabulary")))
        return len(vocabs[0]) ** 2 if vocabs else None


def _is_vocabulary(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and all(isinstance(x, str) for x in value)


def _vocabularies(value: Any) -> Iterator[tuple[str, ...]]:
    """The vocabularies in ``value``: one, or the per-graph list of a batch (of batches)."""
    if value is None:
        return
    if _is_vocabulary(value):
        yield tuple(value)
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _vocabularies(item)


def check_batch_vocabulary(batch: Data) -> None:
    """Raise ``ValueError`` if the graphs collated into ``batch`` have different ``vocabulary`` values."""
    vocabs = list(_vocabularies(batch._store.get("vocabulary")))
    for i, vocab in enumerate(vocabs[1:], start=1):
        if vocab != vocabs[0]:
            raise ValueError(
                f"cannot batch CrossModalGraphs with different relation vocabularies: graph 0 has "
                f"{vocabs[0]}, graph {i} has {vocab}, so the same edge_type id would mean different "
                f"modality pairs; build every graph of the dataset with the same vocabulary=(...)"
            )
