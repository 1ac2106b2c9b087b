"""``IndexedTensor``: ``pool[index]`` kept as the pool and the index, gathered per batch."""

from __future__ import annotations

import pytest
import torch

from wsfusion.data.indexed import IndexedTensor


@pytest.fixture
def view():
    pool = torch.randn(7, 2, 3)
    index = torch.randint(0, 7, (5, 4))
    return IndexedTensor(pool, index), pool[index]


@pytest.mark.parametrize("key", [
    0, -1, slice(1, 4), slice(None, None, 2), torch.tensor([4, 0, 0]), torch.tensor([True, False, True, False, True]),
    (slice(None), 2), (1, 3), (torch.tensor([2, 1]), slice(0, 2)), (0, 1, 1), (slice(None), slice(None), 0, 2),
    (Ellipsis, 0), (None, 1),
])
def test_indexing_is_the_materialised_tensors(view, key):
    lazy, full = view
    assert torch.equal(lazy[key], full[key])


def test_tensor_attributes(view):
    lazy, full = view
    assert lazy.shape == full.shape == (5, 4, 2, 3) and lazy.size(1) == 4 and lazy.size() == full.size()
    assert (lazy.dtype, lazy.device, lazy.ndim, lazy.dim(), lazy.numel(), len(lazy)) == (
        full.dtype, full.device, 4, 4, full.numel(), 5)
    assert lazy.is_floating_point() and not IndexedTensor(torch.arange(3), torch.tensor([0])).is_floating_point()
    assert torch.equal(lazy.materialize(), full) and torch.equal(lazy.to(torch.float64), full.double())
    assert "IndexedTensor(shape=[5, 4, 2, 3]" in repr(lazy)


def test_torch_functions_see_the_whole_tensor(view):
    lazy, full = view
    assert torch.equal(lazy, full) and torch.equal(full, lazy)
    assert torch.equal(torch.cat([lazy, lazy]), torch.cat([full, full]))
    torch.testing.assert_close(torch.mean(lazy, dim=0), full.mean(0))


def test_gathered_rows_are_copies(view):
    lazy, full = view
    lazy[0].zero_()
    lazy[:2].zero_()
    assert torch.equal(lazy.materialize(), full)


def test_invalid_arguments():
    with pytest.raises(TypeError, match="index must be an int64 tensor"):
        IndexedTensor(torch.zeros(3), torch.zeros(2, dtype=torch.int32))
    with pytest.raises(TypeError, match="pool must be a tensor"):
        IndexedTensor([1.0], torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"index must hold rows of pool, in \[0, 3\), got values in \[0, 3\]"):
        IndexedTensor(torch.zeros(3), torch.tensor([0, 3]))
