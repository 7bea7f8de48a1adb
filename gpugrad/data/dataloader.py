"""DataLoader: batches of a dataset, optionally reshuffled every epoch, as in torch.utils.data.

Shuffling is reproducible. Epoch k's order is a permutation drawn from a NumPy Generator seeded
with (seed, k), so it depends only on the loader's `seed` and on k, never on how many batches
were drawn before. Each ``iter(loader)`` uses the loader's current `epoch` and then advances it.

Resuming a run: save ``loader.state_dict()`` (seed and next epoch) in the checkpoint and
restore it with ``loader.load_state_dict(state)``; or call ``loader.set_epoch(k)`` before each
epoch, as with PyTorch's DistributedSampler. To resume in the middle of epoch k after `b`
batches, iterate ``loader.iterate(k, start_batch=b)``: it yields exactly the batches the
interrupted run had not reached yet, without loading the skipped ones.
"""

from __future__ import annotations

import numbers

import numpy as np

from gpugrad import backend


class DataLoader:
    """Iterates over `dataset` in batches of `batch_size` samples.

    shuffle: reshuffle the sample order every epoch (see the module docstring for how).
    drop_last: drop the final batch when it has fewer than `batch_size` samples.
    seed: seed of the shuffle; when None, one is drawn from gpugrad's CPU generator, so
        ``gpugrad.manual_seed`` makes the order reproducible too.
    collate_fn: merges a list of samples into a batch (default: `default_collate`). When it is
        None and the dataset has ``get_batch``, batches are gathered in one indexing operation.
    """

    def __init__(
        self,
        dataset,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
        collate_fn=None,
    ):
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
            raise TypeError(f"DataLoader: batch_size must be an int, got {batch_size!r}")
        if batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be >= 1, got {batch_size}")
        if seed is None:
            seed = int(backend.generator(backend.CPU).integers(0, 2**63 - 1))
        elif isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"DataLoader: seed must be a non-negative int, got {seed!r}")
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"DataLoader: collate_fn must be callable, got {collate_fn!r}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = int(seed)
        self.collate_fn = collate_fn
        self.epoch = 0  # the epoch the next iter() will use

    def __len__(self) -> int:
        n = len(self.dataset)
        if self.drop_last:
            return n // self.batch_size
        return -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration use epoch `epoch`'s order."""
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
            raise ValueError(f"DataLoader.set_epoch: epoch must be an int >= 0, got {epoch!r}")
        self.epoch = int(epoch)

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.seed = int(state["seed"])
        self.set_epoch(state["epoch"])

    def order(self, epoch: int) -> np.ndarray:
        """The sample order of epoch `epoch` (int64 indices into the dataset)."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        rng = np.random.default_rng([self.seed, int(epoch)])
        return rng.permutation(n).astype(np.int64)

    def batch_indices(self, epoch: int) -> list[np.ndarray]:
        """The index array of every batch of epoch `epoch`, in order."""
        order = self.order(epoch)
        stop = len(self) * self.batch_size if self.drop_last else len(order)
        return [order[i : i + self.batch_size] for i in range(0, stop, self.batch_size)]

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        return self.iterate(epoch)

    def iterate(self, epoch: int, start_batch: int = 0):
        """The batches of epoch `epoch` from batch number `start_batch` on (epoch unchanged)."""
        if start_batch < 0:
            raise ValueError(f"DataLoader.iterate: start_batch must be >= 0, got {start_batch}")
        return self._batches(self.batch_indices(epoch)[start_batch:])

    def _batches(self, index_arrays):
        get_batch = getattr(self.dataset, "get_batch", None) if self.collate_fn is None else None
        collate = self.collate_fn or default_collate
        for indices in index_arrays:
            if get_batch is not None:
                yield get_batch(indices)
            else:
                yield collate([self.dataset[int(i)] for i in indices])

    def __repr__(self):
        return (
            f"DataLoader(dataset={type(self.dataset).__name__}[{len(self.dataset)}], "
            f"batch_size={self.batch_size}, shuffle={self.shuffle}, drop_last={self.drop_last}, "
            f"seed={self.seed})"
        )


def default_collate(samples: list):
    """Merge samples into a batch the way PyTorch's default_collate does.

    Tensors and NumPy arrays are stacked along a new first dim; Python ints become an int64
    tensor, floats a float64 tensor, bools a bool tensor; tuples, lists and dicts are collated
    field by field; strings and None are returned as lists.
    """
    import gpugrad
    from gpugrad.tensor import Tensor

    if not samples:
        raise ValueError("default_collate: got an empty list of samples")
    first = samples[0]
    if isinstance(first, Tensor):
        return _stack_tensors(samples)
    if isinstance(first, np.ndarray) or isinstance(first, np.generic):
        return gpugrad.from_numpy(np.stack([np.asarray(s) for s in samples]))
    if isinstance(first, (bool, np.bool_)):
        return gpugrad.from_numpy(np.array(samples, dtype=np.bool_))
    if isinstance(first, numbers.Integral):
        return gpugrad.from_numpy(np.array(samples, dtype=np.int64))
    if isinstance(first, numbers.Real):
        return gpugrad.from_numpy(np.array(samples, dtype=np.float64))
    if isinstance(first, (str, bytes)) or first is None:
        return list(samples)
    if isinstance(first, dict):
        return {key: default_collate([s[key] for s in samples]) for key in first}
    if isinstance(first, (tuple, list)):
        width = len(first)
        if any(len(s) != width for s in samples):
            raise ValueError("default_collate: samples are sequences of different lengths")
        fields = [default_collate([s[k] for s in samples]) for k in range(width)]
        return tuple(fields) if isinstance(first, tuple) else fields
    raise TypeError(f"default_collate: cannot collate samples of type {type(first).__name__}")


def _stack_tensors(tensors: list):
    import gpugrad

    shape, device = tensors[0].shape, tensors[0].device
    for t in tensors:
        if t.shape != shape or t.device != device:
            raise ValueError(
                f"default_collate: tensors to stack must share shape and device, got "
                f"{tuple(shape)} on {device} and {tuple(t.shape)} on {t.device}"
            )
    return gpugrad.stack(tensors, 0)
