"""MNIST, Fashion-MNIST and the small MNIST subset shipped inside the package.

The whole dataset lives in memory as uint8 arrays (`.data`, N x 28 x 28, and `.targets`,
int64); images become float32 only when drawn: scaled to [0, 1], normalised with the dataset's
mean and std, reshaped to (1, 28, 28) per sample or (B, 1, 28, 28) per batch.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import numpy as np

from gpugrad.data import download as _download
from gpugrad.data.dataset import Dataset, _check_index, _from_numpy
from gpugrad.data.idx import IMAGES_MAGIC, LABELS_MAGIC, parse_idx

_TRAIN_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
_TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class MNIST(Dataset):
    """MNIST handwritten digits read from the original IDX files in `root`.

    The files (gzipped or not) may lie in `root` itself, in torchvision's layout
    `root/MNIST/raw/`, or in `root/mnist/`. With ``download=True`` missing files are fetched
    (see gpugrad.data.download) into `root/MNIST/raw/`.

    transform: optional callable on float32 NumPy image arrays, applied after normalisation.
        It receives (1, 28, 28) arrays from ``dataset[i]`` and whole (B, 1, 28, 28) batches from
        the DataLoader's fast path, so it must act on the trailing dims only.
    normalize: subtract `mean` and divide by `std` after scaling to [0, 1].
    """

    name = "mnist"
    folder = "MNIST"  # torchvision's folder name
    mean = 0.1307
    std = 0.3081
    classes = [f"{d} - {w}" for d, w in enumerate(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    )]

    def __init__(self, root, train: bool = True, download: bool = False, transform=None,
                 normalize: bool = True):
        if root is None:
            raise ValueError(f"{type(self).__name__}: root is None; pass the folder of the files")
        self.root = Path(root).expanduser()
        self.train = bool(train)
        self.transform = transform
        self.normalize = bool(normalize)
        images_name, labels_name = _TRAIN_FILES if self.train else _TEST_FILES
        paths = self._find(images_name, labels_name)
        if paths is None and download:
            raw = self.root / self.folder / "raw"
            _download.download_dataset(self.name, raw)
            paths = self._find(images_name, labels_name)
        if paths is None:
            raise FileNotFoundError(self._missing_message(images_name, labels_name))
        images_path, labels_path = paths
        images = parse_idx(images_path.read_bytes(), str(images_path), IMAGES_MAGIC)
        labels = parse_idx(labels_path.read_bytes(), str(labels_path), LABELS_MAGIC)
        self.data, self.targets = _check_pair(images, labels, images_path, labels_path)

    def _search_dirs(self) -> list[Path]:
        return [self.root, self.root / self.folder / "raw", self.root / self.name]

    def _find(self, *basenames):
        """The paths of `basenames` (.gz or not) in the first folder holding all of them."""
        for folder in self._search_dirs():
            found = []
            for base in basenames:
                candidates = [folder / (base + ".gz"), folder / base]
                hit = next((p for p in candidates if p.is_file()), None)
                if hit is None:
                    break
                found.append(hit)
            else:
                return found
        return None

    def _missing_message(self, *basenames) -> str:
        dirs = ", ".join(str(d) for d in self._search_dirs())
        names = ", ".join(b + "[.gz]" for b in basenames)
        return (
            f"{type(self).__name__}: {names} not found in any of: {dirs}. "
            f"Point root (--data-dir for gpugrad train) at the folder that holds them, fetch "
            f"them into root with {type(self).__name__}(root, download=True) in Python (gpugrad "
            f"train does not download), or use the built-in 'mnist-mini' subset."
        )

    def __len__(self):
        return len(self.targets)

    def _images(self, pixels: np.ndarray) -> np.ndarray:
        x = pixels.astype(np.float32)
        x /= np.float32(255)
        if self.normalize:
            x -= np.float32(self.mean)
            x /= np.float32(self.std)
        x = x.reshape(pixels.shape[:-2] + (1, 28, 28))
        if self.transform is not None:
            x = self.transform(x)
        return x

    def __getitem__(self, index):
        index = _check_index(index, len(self), type(self).__name__)
        return _from_numpy(self._images(self.data[index])), int(self.targets[index])

    def get_batch(self, indices: np.ndarray):
        """Images (B, 1, 28, 28) float32 and labels (B,) int64 of samples `indices`."""
        return _from_numpy(self._images(self.data[indices])), _from_numpy(self.targets[indices])

    def __repr__(self):
        split = "train" if self.train else "test"
        return f"{type(self).__name__}({split}, {len(self)} samples, root={str(self.root)!r})"


class FashionMNIST(MNIST):
    """Fashion-MNIST (Zalando): 28x28 grey clothing images in 10 classes, MNIST's file layout."""

    name = "fashion-mnist"
    folder = "FashionMNIST"
    mean = 0.2860
    std = 0.3530
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"]


def _check_pair(images, labels, images_path, labels_path):
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise ValueError(
            f"{images_path}: expected uint8 images of shape (N, 28, 28), got {images.dtype} "
            f"{images.shape}"
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise ValueError(f"{labels_path}: expected uint8 labels of shape (N,), got {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels"
        )
    if labels.size and labels.max() > 9:
        raise ValueError(f"{labels_path}: labels must lie in 0..9, found {int(labels.max())}")
    return images, labels.astype(np.int64)


# ----------------------------------------------------------------------------- embedded subset

MINI_PACKAGE = "gpugrad.data"
MINI_FOLDER = "mnist_mini"
MINI_MANIFEST = "MANIFEST.json"


class MNISTMini(MNIST):
    """A fixed real subset of MNIST shipped inside the package: 10 000 training images (1 000
    per digit) and 2 000 test images (200 per digit), drawn by tools/make_mnist_mini.py.

    Needs no download. Normalised with full MNIST's mean and std. The files are checked against
    the MD5s in the folder's MANIFEST.json so a damaged install fails loudly.
    """

    def __init__(self, train: bool = True, transform=None, normalize: bool = True):
        self.root = None
        self.train = bool(train)
        self.transform = transform
        self.normalize = bool(normalize)
        folder = resources.files(MINI_PACKAGE).joinpath(MINI_FOLDER)
        manifest = json.loads(folder.joinpath(MINI_MANIFEST).read_text())
        split = "train" if self.train else "test"
        arrays = []
        for base, magic in zip(_TRAIN_FILES if self.train else _TEST_FILES,
                               (IMAGES_MAGIC, LABELS_MAGIC)):
            name = base + ".gz"
            raw = folder.joinpath(name).read_bytes()
            expected = manifest["files"][name]["md5"]
            got = hashlib.md5(raw).hexdigest()
            if got != expected:
                raise RuntimeError(
                    f"MNISTMini: embedded file {MINI_FOLDER}/{name} has MD5 {got}, expected "
                    f"{expected}: the package install is damaged; reinstall gpugrad"
                )
            arrays.append(parse_idx(raw, f"{MINI_FOLDER}/{name}", magic))
        self.data, self.targets = _check_pair(*arrays, f"{MINI_FOLDER} {split} images",
                                              f"{MINI_FOLDER} {split} labels")

    def __repr__(self):
        split = "train" if self.train else "test"
        return f"MNISTMini({split}, {len(self)} samples)"


def mnist_mini(train: bool = True, transform=None, normalize: bool = True) -> MNISTMini:
    """The embedded MNIST subset (10 000 train / 2 000 test images)."""
    return MNISTMini(train=train, transform=transform, normalize=normalize)


# ----------------------------------------------------------------------------- by name

DATASETS = ("mnist-mini", "mnist", "fashion-mnist")


def get_dataset(name: str, root=None, train: bool = True, download: bool = False):
    """A dataset by command-line name: "mnist-mini" (embedded), "mnist" or "fashion-mnist"."""
    if name == "mnist-mini":
        return MNISTMini(train=train)
    if name in ("mnist", "fashion-mnist"):
        cls_name = "MNIST" if name == "mnist" else "FashionMNIST"
        if root is None:
            raise ValueError(
                f"dataset {name!r} needs a data folder: pass --data-dir DIR (root=DIR) holding "
                f"the IDX files (fetch them there with gpugrad.data.{cls_name}(DIR, "
                f"download=True) in Python), or use 'mnist-mini', "
                f"which ships with gpugrad"
            )
        cls = MNIST if name == "mnist" else FashionMNIST
        return cls(root, train=train, download=download)
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
