"""DataLoader, TensorDataset, ArrayDataset, Subset and default_collate."""

import itertools

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.data import (
    ArrayDataset,
    DataLoader,
    Dataset,
    Subset,
    TensorDataset,
    default_collate,
    random_split,
)


def _ids(batches):
    """The sample ids of every batch, for datasets whose first field is the sample id."""
    return [b[0].numpy().tolist() for b in batches]


def _id_dataset(n):
    return ArrayDataset(np.arange(n, dtype=np.int64), np.arange(n, dtype=np.float32) * 0.5)


@pytest.mark.parametrize("n,batch_size,drop_last,expected_len", [
    (10, 3, False, 4), (10, 3, True, 3), (9, 3, False, 3), (9, 3, True, 3),
    (2, 5, False, 1), (2, 5, True, 0), (0, 4, False, 0),
])
def test_len_matches_the_batches(n, batch_size, drop_last, expected_len):
    loader = DataLoader(_id_dataset(n), batch_size=batch_size, drop_last=drop_last)
    batches = list(loader)
    assert len(loader) == expected_len == len(batches)
    sizes = [len(b[0].numpy()) for b in batches]
    if drop_last:
        assert all(s == batch_size for s in sizes)
    assert sum(sizes) == (expected_len * batch_size if drop_last else n)


def test_unshuffled_order_and_batch_contents():
    batches = list(DataLoader(_id_dataset(7), batch_size=3))
    assert _ids(batches) == [[0, 1, 2], [3, 4, 5], [6]]
    ids, halves = batches[1]
    assert ids.dtype == np.int64 and halves.dtype == np.float32
    np.testing.assert_array_equal(halves.numpy(), [1.5, 2.0, 2.5])


def test_shuffle_is_a_new_permutation_every_epoch():
    loader = DataLoader(_id_dataset(50), batch_size=8, shuffle=True, seed=7)
    epochs = [sum(_ids(loader), []) for _ in range(3)]
    for order in epochs:
        assert sorted(order) == list(range(50))
    assert epochs[0] != epochs[1] != epochs[2] != epochs[0]
    assert loader.epoch == 3


def test_shuffle_is_reproducible_from_seed_and_epoch():
    a = DataLoader(_id_dataset(50), batch_size=8, shuffle=True, seed=7)
    b = DataLoader(_id_dataset(50), batch_size=8, shuffle=True, seed=7)
    c = DataLoader(_id_dataset(50), batch_size=8, shuffle=True, seed=8)
    first_a = [_ids(a) for _ in range(3)]
    assert first_a == [_ids(b) for _ in range(3)]
    assert _ids(c) != first_a[0]
    # Resuming at epoch 2 (fresh loader, as after a restart) gives epoch 2's order.
    resumed = DataLoader(_id_dataset(50), batch_size=8, shuffle=True, seed=7)
    resumed.set_epoch(2)
    assert _ids(resumed) == first_a[2]
    # The same through state_dict / load_state_dict.
    state = DataLoader(_id_dataset(50), batch_size=8, shuffle=True, seed=7).state_dict()
    state["epoch"] = 1
    other = DataLoader(_id_dataset(50), batch_size=8, shuffle=True, seed=99)
    other.load_state_dict(state)
    assert _ids(other) == first_a[1] and other.epoch == 2


def test_resume_mid_epoch_yields_the_remaining_batches():
    loader = DataLoader(_id_dataset(50), batch_size=8, shuffle=True, seed=3)
    full = _ids(loader.iterate(4))
    assert _ids(loader.iterate(4, start_batch=5)) == full[5:]
    assert _ids(itertools.islice(loader.iterate(4), 5, None)) == full[5:]
    assert loader.epoch == 0  # iterate() does not advance the epoch counter
    assert [b.tolist() for b in loader.batch_indices(4)] == full


def test_seed_none_follows_gpugrad_manual_seed():
    gg.manual_seed(1234)
    a = DataLoader(_id_dataset(40), batch_size=40, shuffle=True)
    b = DataLoader(_id_dataset(40), batch_size=40, shuffle=True)
    gg.manual_seed(1234)
    a2 = DataLoader(_id_dataset(40), batch_size=40, shuffle=True)
    assert a.seed == a2.seed and a.seed != b.seed
    assert _ids(a) == _ids(a2) != _ids(b)


class _BatchOnly(Dataset):
    """A dataset whose per-sample path is broken: only get_batch works."""

    def __init__(self, n):
        self.x = np.arange(n, dtype=np.float32) * 10
        self.calls = 0

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        raise AssertionError("the per-sample path should not be used")

    def get_batch(self, indices):
        self.calls += 1
        return (gg.from_numpy(self.x[indices]),)


def test_fast_path_gathers_each_batch_once():
    dataset = _BatchOnly(10)
    batches = list(DataLoader(dataset, batch_size=4, shuffle=True, seed=0))
    assert dataset.calls == 3
    assert sorted(np.concatenate([b[0].numpy() for b in batches]).tolist()) == list(
        np.arange(10, dtype=np.float32) * 10
    )


def test_collate_fn_uses_the_per_sample_path():
    dataset = _id_dataset(5)
    seen = []

    def collate(samples):
        seen.append(len(samples))
        return default_collate(samples)

    batches = list(DataLoader(dataset, batch_size=2, collate_fn=collate))
    assert seen == [2, 2, 1]
    fast = list(DataLoader(dataset, batch_size=2))
    for (a_ids, a_x), (b_ids, b_x) in zip(batches, fast):
        np.testing.assert_array_equal(a_ids.numpy(), b_ids.numpy())
        np.testing.assert_array_equal(a_x.numpy(), b_x.numpy())
        assert a_x.dtype == b_x.dtype and a_ids.dtype == b_ids.dtype


def test_tensor_dataset_items_and_batches():
    x = gg.tensor(np.arange(12, dtype=np.float32).reshape(6, 2))
    y = gg.tensor(np.array([0, 1, 2, 0, 1, 2]))
    dataset = TensorDataset(x, y)
    assert len(dataset) == 6
    xi, yi = dataset[-1]
    np.testing.assert_array_equal(xi.numpy(), [10, 11])
    assert int(yi.item()) == 2
    (xb, yb), = list(DataLoader(dataset, batch_size=6, shuffle=True, seed=5))
    order = DataLoader(dataset, batch_size=6, shuffle=True, seed=5).order(0)
    np.testing.assert_array_equal(xb.numpy(), x.numpy()[order])
    np.testing.assert_array_equal(yb.numpy(), y.numpy()[order])
    assert xb.dtype == np.float32 and yb.dtype == np.int64 and xb.device == x.device
    # The per-sample path (stacking items) gives the same batches.
    (xs, ys), = list(DataLoader(dataset, batch_size=6, shuffle=True, seed=5,
                                collate_fn=default_collate))
    np.testing.assert_array_equal(xs.numpy(), xb.numpy())
    np.testing.assert_array_equal(ys.numpy(), yb.numpy())


def test_tensor_dataset_errors():
    with pytest.raises(ValueError, match=r"same size in dim 0.*\(3, 2\), \(4,\)"):
        TensorDataset(gg.zeros(3, 2), gg.zeros(4))
    with pytest.raises(TypeError, match="argument 1 must be a gpugrad Tensor, got ndarray"):
        TensorDataset(gg.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()
    with pytest.raises(ValueError, match="0-d"):
        TensorDataset(gg.tensor(1.0))
    with pytest.raises(IndexError, match="index 3 out of range for a dataset of 3"):
        TensorDataset(gg.zeros(3))[3]


def test_array_dataset_errors():
    with pytest.raises(ValueError, match=r"\(3,\), \(2, 2\)"):
        ArrayDataset(np.zeros(3), np.zeros((2, 2)))
    with pytest.raises(TypeError, match="index must be an int"):
        ArrayDataset(np.zeros(3))[1.0]


@pytest.mark.parametrize("kwargs,error", [
    ({"batch_size": 0}, ValueError), ({"batch_size": 2.0}, TypeError),
    ({"batch_size": True}, TypeError), ({"seed": -1}, ValueError),
    ({"collate_fn": 3}, TypeError),
])
def test_bad_arguments(kwargs, error):
    with pytest.raises(error, match="DataLoader"):
        DataLoader(_id_dataset(3), **kwargs)


def test_default_collate_structures():
    samples = [
        {"x": gg.tensor([1.0, 2.0]), "y": 3, "w": 0.5, "name": "a", "ok": True},
        {"x": gg.tensor([3.0, 4.0]), "y": 4, "w": 1.5, "name": "b", "ok": False},
    ]
    batch = default_collate(samples)
    np.testing.assert_array_equal(batch["x"].numpy(), [[1, 2], [3, 4]])
    assert batch["y"].dtype == np.int64 and batch["y"].numpy().tolist() == [3, 4]
    assert batch["w"].dtype == np.float64
    assert batch["ok"].dtype == np.bool_
    assert batch["name"] == ["a", "b"]
    pair = default_collate([(np.zeros(2, np.float32), 1), (np.ones(2, np.float32), 2)])
    assert isinstance(pair, tuple) and pair[0].shape == (2, 2)
    with pytest.raises(ValueError, match="share shape"):
        default_collate([gg.zeros(2), gg.zeros(3)])
    with pytest.raises(TypeError, match="cannot collate"):
        default_collate([object()])


def test_subset_and_random_split():
    dataset = _id_dataset(10)
    parts = random_split(dataset, [7, 3], seed=1)
    ids = [sum(_ids(DataLoader(p, batch_size=4)), []) for p in parts]
    assert len(ids[0]) == 7 and len(ids[1]) == 3
    assert sorted(ids[0] + ids[1]) == list(range(10))
    assert ids == [sum(_ids(DataLoader(p, batch_size=4)), [])
                   for p in random_split(dataset, [7, 3], seed=1)]
    assert [len(p) for p in random_split(dataset, [0.5, 0.3, 0.2])] == [5, 3, 2]
    sub = Subset(dataset, [4, 2])
    assert hasattr(sub, "get_batch") and int(sub[1][0].item()) == 2
    assert not hasattr(Subset(_NoBatch(), [0]), "get_batch")
    with pytest.raises(ValueError, match="summing"):
        random_split(dataset, [5, 4])
    with pytest.raises(IndexError, match=r"\[0, 10\)"):
        Subset(dataset, [10])


class _NoBatch(Dataset):
    def __len__(self):
        return 1

    def __getitem__(self, index):
        return index


@pytest.mark.skipif(not gg.backend.cuda_is_available(),
                    reason="needs CUDA (or NUMBA_ENABLE_CUDASIM=1)")
def test_tensor_dataset_batches_stay_on_the_tensors_device():
    x = gg.arange(10, dtype=gg.float32, device="cuda")
    y = gg.arange(10, device="cuda")
    loader = DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True, seed=0)
    order = loader.order(0)
    for k, (xb, yb) in enumerate(loader):
        assert xb.device == yb.device == gg.device("cuda", 0)
        np.testing.assert_array_equal(yb.numpy(), order[4 * k : 4 * k + 4])
        np.testing.assert_array_equal(xb.numpy(), order[4 * k : 4 * k + 4].astype(np.float32))
