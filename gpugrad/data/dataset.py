"""Datasets: indexable collections of samples, as in torch.utils.data.

A dataset may also define ``get_batch(indices)``, taking a 1-D int64 NumPy array and returning
what the DataLoader's default collation would return for ``[dataset[i] for i in indices]``.
The DataLoader then builds each batch with one fancy-indexing operation per array instead of a
Python loop over samples, which is what keeps data loading off the critical path in training.
"""

from __future__ import annotations

import numpy as np


def _tensor_class():
    # Imported lazily: the data layer sits above tensor.py and must not import it at load time.
    from gpugrad.tensor import Tensor

    return Tensor


def _from_numpy(array: np.ndarray):
    import gpugrad

    # Not np.ascontiguousarray: it turns 0-d arrays into 1-d ones.
    if not array.flags.c_contiguous:
        array = array.copy()
    return gpugrad.from_numpy(array)


class Dataset:
    """Base class: subclasses define ``__getitem__(index)`` and ``__len__()``."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __len__")


def _check_index(index, length: int, who: str) -> int:
    if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
        raise TypeError(f"{who}: index must be an int, got {type(index).__name__}")
    index = int(index)
    if not -length <= index < length:
        raise IndexError(f"{who}: index {index} out of range for a dataset of {length} samples")
    return index % length if length else index


class TensorDataset(Dataset):
    """Samples are the rows of tensors that share their first dimension.

    ``dataset[i]`` is ``tuple(t[i] for t in tensors)``, and batches keep each tensor's device.
    """

    def __init__(self, *tensors):
        Tensor = _tensor_class()
        if not tensors:
            raise ValueError("TensorDataset: needs at least one tensor")
        for k, t in enumerate(tensors):
            if not isinstance(t, Tensor):
                raise TypeError(
                    f"TensorDataset: argument {k} must be a gpugrad Tensor, got "
                    f"{type(t).__name__} (wrap NumPy arrays with gpugrad.from_numpy)"
                )
            if len(t.shape) == 0:
                raise ValueError(f"TensorDataset: argument {k} is 0-d; tensors need a first dim")
        sizes = [t.shape[0] for t in tensors]
        if any(s != sizes[0] for s in sizes):
            shapes = ", ".join(str(tuple(t.shape)) for t in tensors)
            raise ValueError(
                f"TensorDataset: all tensors must have the same size in dim 0, got shapes {shapes}"
            )
        self.tensors = tensors

    def __len__(self):
        return self.tensors[0].shape[0]

    def __getitem__(self, index):
        index = _check_index(index, len(self), "TensorDataset")
        return tuple(t[index] for t in self.tensors)

    def get_batch(self, indices: np.ndarray):
        return tuple(_take_rows(t, indices) for t in self.tensors)


def _take_rows(t, indices: np.ndarray):
    """Rows `indices` of tensor `t`, on t's device, with one gather."""
    import gpugrad

    index = gpugrad.tensor(indices, dtype=np.int64, device=t.device)
    return t[index]


class ArrayDataset(Dataset):
    """Samples are the rows of NumPy arrays held in host memory; items and batches are Tensors.

    The in-memory counterpart of TensorDataset for data that is loaded from disk as NumPy
    arrays: nothing is converted until a batch is drawn.
    """

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError("ArrayDataset: needs at least one array")
        arrays = tuple(np.asarray(a) for a in arrays)
        for k, a in enumerate(arrays):
            if a.ndim == 0:
                raise ValueError(f"ArrayDataset: argument {k} is 0-d; arrays need a first dim")
        if any(a.shape[0] != arrays[0].shape[0] for a in arrays):
            shapes = ", ".join(str(a.shape) for a in arrays)
            raise ValueError(
                f"ArrayDataset: all arrays must have the same size in dim 0, got shapes {shapes}"
            )
        self.arrays = arrays

    def __len__(self):
        return self.arrays[0].shape[0]

    def __getitem__(self, index):
        index = _check_index(index, len(self), "ArrayDataset")
        return tuple(_from_numpy(np.array(a[index])) for a in self.arrays)

    def get_batch(self, indices: np.ndarray):
        return tuple(_from_numpy(a[indices]) for a in self.arrays)


class Subset(Dataset):
    """The samples of `dataset` at positions `indices` (keeps the parent's fast batch path)."""

    def __init__(self, dataset, indices):
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(dataset)
        if indices.size and (indices.min() < 0 or indices.max() >= n):
            raise IndexError(
                f"Subset: indices must lie in [0, {n}), got range "
                f"[{indices.min()}, {indices.max()}]"
            )
        self.dataset = dataset
        self.indices = indices

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, index):
        index = _check_index(index, len(self), "Subset")
        return self.dataset[int(self.indices[index])]

    def __getattr__(self, name):
        # Only expose get_batch when the parent has it, so DataLoader picks the right path.
        if name == "get_batch" and hasattr(self.dataset, "get_batch"):
            return lambda indices: self.dataset.get_batch(self.indices[indices])
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")


def random_split(dataset, lengths, seed: int = 0) -> list[Subset]:
    """Split `dataset` into non-overlapping random Subsets of the given lengths.

    `lengths` are counts summing to len(dataset), or fractions summing to 1 (remainders go to
    the first splits, as in PyTorch). The split depends only on `seed`.
    """
    n = len(dataset)
    lengths = list(lengths)
    if lengths and all(isinstance(x, float) for x in lengths) and abs(sum(lengths) - 1) < 1e-6:
        counts = [int(np.floor(n * f)) for f in lengths]
        for k in range(n - sum(counts)):
            counts[k % len(counts)] += 1
        lengths = counts
    if any(int(x) != x or x < 0 for x in lengths) or sum(lengths) != n:
        raise ValueError(
            f"random_split: lengths {lengths} must be non-negative counts summing to the dataset "
            f"size {n} (or fractions summing to 1)"
        )
    order = np.random.default_rng(seed).permutation(n)
    splits, start = [], 0
    for length in lengths:
        splits.append(Subset(dataset, order[start : start + int(length)]))
        start += int(length)
    return splits
