"""Data edges: default_collate infers number dtypes as PyTorch does and names ragged shapes;
DataLoader checks epoch, start_batch and loaded state; the MNIST message names real options."""

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.data import DataLoader, TensorDataset
from gpugrad.data.dataloader import default_collate

NUMBER_BATCHES = [[1, 2.5], [2.5, 1], [True, 2], [2, True], [True, False], [1.0, True], [1, 2]]


@pytest.mark.parametrize("samples, dtype", [
    ([1, 2.5], np.float32), ([2.5, 1], np.float64), ([True, 2], np.int64),
    ([2, True], np.int64), ([True, False], np.bool_), ([1.0, True], np.float64),
    ([1, 2], np.int64),
])
def test_collate_infers_the_dtype_from_all_numbers(samples, dtype):
    batch = default_collate(samples)
    assert batch.dtype == dtype
    np.testing.assert_array_equal(batch.numpy(), np.array(samples, dtype=dtype))


@pytest.mark.parametrize("samples", NUMBER_BATCHES)
def test_collate_numbers_match_torch(samples):
    pytest.importorskip("torch")
    from torch.utils.data import default_collate as torch_collate

    theirs = torch_collate(samples)
    ours = default_collate(samples)
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


@pytest.mark.parametrize("samples, match", [
    ([np.ones(2), np.ones(3)], r"same shape, got \(2,\) \(sample 0\) and \(3,\) \(sample 1\)"),
    ([[1, 2], [1, 2, 3]], "sample 0 has length 2, sample 1 length 3"),
    ([(1, 2), 3], "sample 0 has length 2, sample 1 int"),
])
def test_collate_names_ragged_samples(samples, match):
    with pytest.raises(ValueError, match="default_collate: .*" + match):
        default_collate(samples)


def test_collate_names_a_non_number_among_numbers():
    with pytest.raises(TypeError, match="default_collate: sample 0 is a number, sample 1 is str"):
        default_collate([1, "a"])


def _loader():
    return DataLoader(TensorDataset(gg.arange(10)), batch_size=3, shuffle=True, seed=1)


@pytest.mark.parametrize("call, error, match", [
    (lambda dl: dl.iterate(-1), ValueError, "DataLoader.iterate: epoch must be an int >= 0"),
    (lambda dl: dl.iterate(1.5), TypeError, "DataLoader.iterate: epoch must be an int >= 0, "
                                            "got float 1.5"),
    (lambda dl: dl.iterate(0, start_batch=0.5), TypeError, "start_batch must be an int"),
    (lambda dl: dl.iterate(0, start_batch=-1), ValueError, "start_batch must be an int >= 0"),
    (lambda dl: dl.set_epoch(2.0), TypeError, "DataLoader.set_epoch: epoch"),
    (lambda dl: dl.load_state_dict({"seed": -5, "epoch": 0}), ValueError,
     "DataLoader.load_state_dict: seed must be a non-negative int, got -5"),
    (lambda dl: dl.load_state_dict({"seed": 1.5, "epoch": 0}), ValueError, "seed"),
    (lambda dl: dl.load_state_dict({"seed": 3, "epoch": -1}), ValueError,
     "DataLoader.load_state_dict: epoch must be an int >= 0, got -1"),
    (lambda dl: dl.load_state_dict({"epoch": 0}), ValueError, "'seed' and 'epoch'"),
])
def test_loader_checks_epochs_and_state(call, error, match):
    loader = _loader()
    with pytest.raises(error, match=match):
        call(loader)
    assert loader.state_dict() == {"seed": 1, "epoch": 0}  # a refused state changes nothing


def test_mnist_missing_files_message_offers_real_options(tmp_path):
    from gpugrad.data import MNIST, get_dataset

    with pytest.raises(FileNotFoundError) as info:
        MNIST(tmp_path)
    message = str(info.value)
    assert "--download" not in message
    assert "--data-dir" in message and "MNIST(root, download=True)" in message
    with pytest.raises(ValueError) as info:
        get_dataset("fashion-mnist")
    assert "--download" not in str(info.value) and "FashionMNIST(DIR, download=True)" in str(
        info.value)
