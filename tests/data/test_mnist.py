"""MNIST / Fashion-MNIST datasets, the embedded subset, and get_dataset."""

import gzip
import hashlib
import importlib.util
import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from gpugrad.data import (
    MNIST,
    DataLoader,
    FashionMNIST,
    IDXError,
    MNISTMini,
    default_collate,
    get_dataset,
    mnist_mini,
)
from gpugrad.data.idx import encode_idx, read_idx_images, read_idx_labels

REPO = Path(__file__).resolve().parents[2]


def _write_fake_mnist(folder: Path, n: int = 6, train: bool = True, gz: bool = True, seed=0):
    """A tiny dataset in MNIST's file format; returns (images, labels)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    prefix = "train" if train else "t10k"
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    (folder / f"{prefix}-images-idx3-ubyte{suffix}").write_bytes(encode_idx(images, gz))
    (folder / f"{prefix}-labels-idx1-ubyte{suffix}").write_bytes(encode_idx(labels, gz))
    return images, labels


def test_mini_counts_and_classes():
    train, test = mnist_mini(train=True), MNISTMini(train=False)
    assert len(train) == 10000 and len(test) == 2000
    assert np.bincount(train.targets).tolist() == [1000] * 10
    assert np.bincount(test.targets).tolist() == [200] * 10
    assert train.data.shape == (10000, 28, 28) and train.data.dtype == np.uint8
    assert train.targets.dtype == np.int64
    # Different images in the two splits (the test images are not training images).
    assert not np.array_equal(train.data[:2000], test.data)


def test_mini_files_are_small_and_match_the_manifest():
    folder = resources.files("gpugrad.data").joinpath("mnist_mini")
    manifest = json.loads(folder.joinpath("MANIFEST.json").read_text())
    total = 0
    for name, info in manifest["files"].items():
        raw = folder.joinpath(name).read_bytes()
        assert hashlib.md5(raw).hexdigest() == info["md5"]
        total += len(raw)
    assert total <= 3 * 1024 * 1024


def test_mini_is_the_documented_subset_of_real_mnist(shared_data):
    # Rebuild the selection the way tools/make_mnist_mini.py does and compare with the shipped
    # arrays, so the embedded files are provably real MNIST images with their true labels.
    spec = importlib.util.spec_from_file_location("make_mnist_mini",
                                                  REPO / "tools" / "make_mnist_mini.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    for train, seed_offset in ((True, 0), (False, 1)):
        prefix = "train" if train else "t10k"
        labels = read_idx_labels(shared_data / "mnist" / f"{prefix}-labels-idx1-ubyte.gz")
        images = read_idx_images(shared_data / "mnist" / f"{prefix}-images-idx3-ubyte.gz")
        keep = tool.stratified_indices(labels, 1000 if train else 200, 0 + seed_offset)
        mini = mnist_mini(train=train)
        np.testing.assert_array_equal(mini.data, images[keep])
        np.testing.assert_array_equal(mini.targets, labels[keep])


def test_items_are_scaled_and_normalised():
    raw = mnist_mini(train=False, normalize=False)
    norm = mnist_mini(train=False)
    x_raw, y = raw[3]
    x, y2 = norm[3]
    assert x.shape == (1, 28, 28) and x.dtype == np.float32 and y == y2 == int(raw.targets[3])
    expected = (raw.data[3].astype(np.float64) / 255 - 0.1307) / 0.3081
    np.testing.assert_allclose(x.numpy()[0], expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(x_raw.numpy()[0], raw.data[3] / 255.0, rtol=1e-6)
    assert x_raw.numpy().min() >= 0 and x_raw.numpy().max() <= 1


def test_items_match_torchvision_normalisation():
    torch = pytest.importorskip("torch")
    mini = mnist_mini(train=False)
    pixels = torch.from_numpy(mini.data[:5].copy())
    # What torchvision's ToTensor() + Normalize((0.1307,), (0.3081,)) compute.
    reference = ((pixels.float().div(255) - 0.1307) / 0.3081).unsqueeze(1).numpy()
    images, _ = mini.get_batch(np.arange(5))
    np.testing.assert_allclose(images.numpy(), reference, rtol=0, atol=1e-6)


def test_loader_fast_path_equals_per_sample_path():
    mini = mnist_mini(train=False)
    fast = DataLoader(mini, batch_size=64, shuffle=True, seed=11)
    slow = DataLoader(mini, batch_size=64, shuffle=True, seed=11, collate_fn=default_collate)
    for (xf, yf), (xs, ys) in zip(list(fast)[:3], list(slow)[:3]):
        assert xf.shape == (64, 1, 28, 28) and xf.dtype == np.float32
        assert yf.dtype == ys.dtype == np.int64
        np.testing.assert_array_equal(xf.numpy(), xs.numpy())
        np.testing.assert_array_equal(yf.numpy(), ys.numpy())


def test_transform_applies_to_items_and_batches():
    mini = mnist_mini(train=False, transform=lambda x: x[..., 2:-2, 2:-2])
    assert mini[0][0].shape == (1, 24, 24)
    images, labels = next(iter(DataLoader(mini, batch_size=8)))
    assert images.shape == (8, 1, 24, 24) and labels.shape == (8,)


def test_full_mnist_from_shared_layout(shared_data):
    # root may be the folder holding mnist/ (as /work/shared/data does) ...
    test = MNIST(shared_data, train=False)
    assert len(test) == 10000 and test.targets[:5].tolist() == [7, 2, 1, 0, 4]
    x, y = test[0]
    assert x.shape == (1, 28, 28) and y == 7
    # ... or the folder holding the files themselves.
    assert len(FashionMNIST(shared_data / "fashion-mnist", train=False)) == 10000
    fashion = FashionMNIST(shared_data, train=False)
    assert fashion.classes[int(fashion.targets[0])] == "Ankle boot"
    pixels = fashion.data.astype(np.float64) / 255
    # The normalisation constants are the dataset's statistics (train set: 0.2860 / 0.3530).
    assert abs(pixels.mean() - FashionMNIST.mean) < 0.005
    assert abs(pixels.std() - FashionMNIST.std) < 0.005


def test_torchvision_layout_and_raw_files(tmp_path):
    images, labels = _write_fake_mnist(tmp_path / "MNIST" / "raw", n=5, gz=False)
    dataset = MNIST(tmp_path, train=True, normalize=False)
    np.testing.assert_array_equal(dataset.data, images)
    assert dataset.targets.tolist() == labels.tolist()
    _write_fake_mnist(tmp_path / "FashionMNIST" / "raw", n=3, train=False)
    assert len(FashionMNIST(tmp_path, train=False)) == 3
    assert "FashionMNIST" in repr(FashionMNIST(tmp_path, train=False))


def test_missing_files_error_is_helpful(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        MNIST(tmp_path, train=False)
    message = str(info.value)
    for part in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", str(tmp_path),
                 str(tmp_path / "MNIST" / "raw"), "download=True", "--data-dir"):
        assert part in message


def test_mismatched_and_bad_files(tmp_path):
    folder = tmp_path / "a"
    _write_fake_mnist(folder, n=4)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(encode_idx(np.zeros(5, np.uint8), True))
    with pytest.raises(ValueError, match="4 images but .* 5 labels"):
        MNIST(folder)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(
        encode_idx(np.array([1, 2, 3, 10], np.uint8), True))
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.9, found 10"):
        MNIST(folder)
    data = gzip.decompress((folder / "train-images-idx3-ubyte.gz").read_bytes())
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(data[:-1]))
    with pytest.raises(IDXError, match="train-images-idx3-ubyte.gz.*truncated"):
        MNIST(folder)
    folder = tmp_path / "b"
    folder.mkdir()
    (folder / "train-images-idx3-ubyte").write_bytes(encode_idx(np.zeros((2, 32, 32), np.uint8)))
    (folder / "train-labels-idx1-ubyte").write_bytes(encode_idx(np.zeros(2, np.uint8)))
    with pytest.raises(ValueError, match=r"\(N, 28, 28\).*\(2, 32, 32\)"):
        MNIST(folder)


def test_get_dataset(tmp_path):
    assert isinstance(get_dataset("mnist-mini", train=False), MNISTMini)
    with pytest.raises(ValueError, match="needs a data folder.*--data-dir"):
        get_dataset("mnist")
    with pytest.raises(ValueError, match="needs a data folder"):
        get_dataset("fashion-mnist", train=False)
    with pytest.raises(ValueError, match="unknown dataset 'cifar10'.*mnist-mini"):
        get_dataset("cifar10")
    _write_fake_mnist(tmp_path, n=3, train=False)
    assert len(get_dataset("mnist", root=tmp_path, train=False)) == 3
    assert type(get_dataset("fashion-mnist", root=tmp_path, train=False)) is FashionMNIST
