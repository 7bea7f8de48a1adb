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
        else:
            seed = _check_seed("DataLoader", seed)
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
        self.epoch = _check_count("DataLoader.set_epoch", "epoch", epoch)

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        """Restore `state_dict()`'s seed and epoch (checked before either is set)."""
        who = "DataLoader.load_state_dict"
        if not isinstance(state, dict) or not {"seed", "epoch"} <= set(state):
            raise ValueError(f"{who}: expected a dict with 'seed' and 'epoch', got {state!r}")
        seed = _check_seed(who, state["seed"])
        self.epoch = _check_count(who, "epoch", state["epoch"])
        self.seed = seed

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
        epoch = _check_count("DataLoader.iterate", "epoch", epoch)
        start_batch = _check_count("DataLoader.iterate", "start_batch", start_batch)
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


def _check_count(who: str, name: str, value) -> int:
    """An int >= 0 (not a bool, not a float such as 1.5)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{who}: {name} must be an int >= 0, got {type(value).__name__} "
                        f"{value!r}")
    if value < 0:
        raise ValueError(f"{who}: {name} must be an int >= 0, got {value}")
    return int(value)


def _check_seed(who: str, seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"{who}: seed must be a non-negative int, got {seed!r}")
    return int(seed)


def default_collate(samples: list):
    """Merge samples into a batch the way PyTorch's default_collate does.

    Tensors and NumPy arrays are stacked along a new first dim. Numbers go through
    `gpugrad.tensor` when the first is an int or bool, so the dtype comes from all of them
    (bools -> bool, ints and bools -> int64, any float -> float32, the default float dtype),
    and become float64 when the first is a float: PyTorch's rule, first sample first.
    Tuples, lists and dicts are collated field by field; strings and None are returned as
    lists.
    """
    import gpugrad
    from gpugrad.tensor import Tensor

    if not samples:
        raise ValueError("default_collate: got an empty list of samples")
    first = samples[0]
    if isinstance(first, Tensor):
        return _stack_tensors(samples)
    if isinstance(first, np.ndarray) or isinstance(first, np.generic):
        arrays = [np.asarray(s) for s in samples]
        _check_same_shape([a.shape for a in arrays])
        return gpugrad.from_numpy(np.stack(arrays))
    if isinstance(first, numbers.Real):
        _check_numbers(samples)
        if isinstance(first, numbers.Integral):  # bool too: torch.tensor(samples) as PyTorch
            return gpugrad.tensor(list(samples))
        return gpugrad.from_numpy(np.array(samples, dtype=np.float64))
    if isinstance(first, (str, bytes)) or first is None:
        return list(samples)
    if isinstance(first, dict):
        return {key: default_collate([s[key] for s in samples]) for key in first}
    if isinstance(first, (tuple, list)):
        width = len(first)
        for i, s in enumerate(samples):
            if not isinstance(s, (tuple, list)) or len(s) != width:
                got = f"length {len(s)}" if isinstance(s, (tuple, list)) else type(s).__name__
                raise ValueError(f"default_collate: each sample must be a sequence of the same "
                                 f"length; sample 0 has length {width}, sample {i} {got}")
        fields = [default_collate([s[k] for s in samples]) for k in range(width)]
        return tuple(fields) if isinstance(first, tuple) else fields
    raise TypeError(f"default_collate: cannot collate samples of type {type(first).__name__}")


def _check_same_shape(shapes: list) -> None:
    for i, shape in enumerate(shapes):
        if shape != shapes[0]:
            raise ValueError(f"default_collate: samples to stack must have the same shape, got "
                             f"{tuple(shapes[0])} (sample 0) and {tuple(shape)} (sample {i})")


def _check_numbers(samples: list) -> None:
    for i, s in enumerate(samples):
        if not isinstance(s, numbers.Real):
            raise TypeError(f"default_collate: sample 0 is a number, sample {i} is "
                            f"{type(s).__name__} {s!r}")


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
