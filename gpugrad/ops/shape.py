"""Shape ops: reshape/view, permute/transpose, squeeze/unsqueeze, expand, cat/stack/split,
plus dtype casts and device transfers (differentiable: the gradient goes back the same way)."""

from __future__ import annotations

import math

import numpy as np

from gpugrad import backend
from gpugrad.autograd.function import Function
from gpugrad.ops.common import broadcast_shapes, is_int, normalize_dim
from gpugrad.tensor import Tensor


def _xp(a):
    return backend.array_module(a)


class Reshape(Function):
    keeps_inputs = False  # backward reads no input

    def forward(self, x, shape):
        self.in_shape = x.shape
        return x.reshape(shape)

    def backward(self, gy):
        return (reshape(gy, self.in_shape),)


def _resolve_shape(op, shape, numel):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    if not all(is_int(s) for s in shape):
        raise TypeError(f"{op}: expected a shape of ints, got {shape}")
    shape = tuple(int(s) for s in shape)
    for i, s in enumerate(shape):
        if s < -1:
            raise RuntimeError(f"{op}: invalid shape dimension {s} at index {i} of shape {shape}")
    if shape.count(-1) > 1:
        raise RuntimeError(f"{op}: only one dimension can be inferred, got {shape}")
    known = math.prod(s for s in shape if s != -1)
    if -1 in shape:
        if known == 0 or numel % known:
            raise RuntimeError(f"{op}: shape {shape} is invalid for input of size {numel}")
        shape = tuple(numel // known if s == -1 else s for s in shape)
    elif known != numel:
        raise RuntimeError(f"{op}: shape {shape} is invalid for input of size {numel}")
    return shape


def reshape(x, *shape):
    shape = _resolve_shape("reshape", shape, x.numel())
    if shape == x.shape:
        return x
    return Reshape.apply(x, shape=shape)


def view(x, *shape):
    """x.view(shape) is reshape (gpugrad copies where PyTorch would refuse a non-contiguous
    input); x.view(dtype) reinterprets the bits as another dtype, as in PyTorch: the last
    dimension scales by the ratio of the item sizes, and the result has no gradient."""
    if len(shape) == 1 and _is_dtype(shape[0]):
        return _view_dtype(x, np.dtype(shape[0]))
    shape = _resolve_shape("view", shape, x.numel())
    return x if shape == x.shape else Reshape.apply(x, shape=shape)


def _is_dtype(value) -> bool:
    return isinstance(value, (np.dtype, type)) and not isinstance(value, (tuple, list))


def _view_dtype(x, dtype):
    size, new = x.dtype.itemsize, dtype.itemsize
    if size != new and (x.ndim == 0 or (x.shape[-1] * size) % new):
        raise RuntimeError(
            f"view: cannot view a {x.dtype} tensor of shape {tuple(x.shape)} as {dtype}: the "
            f"last dimension's {x.shape[-1] if x.ndim else 0} x {size} bytes must split into "
            f"{new}-byte items"
        )
    data = _xp(x.data).ascontiguousarray(x.data) if size != new else x.data
    return Tensor(data.view(dtype), x.device)


def view_as(x, other):
    return reshape(x, other.shape)


reshape_as = view_as


def flatten(x, start_dim=0, end_dim=-1):
    if x.ndim == 0:
        return reshape(x, 1)
    start = normalize_dim("flatten", start_dim, x.ndim)
    end = normalize_dim("flatten", end_dim, x.ndim)
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    shape = x.shape[:start] + (math.prod(x.shape[start : end + 1]),) + x.shape[end + 1 :]
    return reshape(x, shape)


class Permute(Function):
    keeps_inputs = False  # backward reads no input

    def forward(self, x, dims):
        self.dims = dims
        return _xp(x).transpose(x, dims)

    def backward(self, gy):
        return (permute(gy, tuple(np.argsort(self.dims).tolist())),)


def permute(x, *dims):
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    if len(dims) != x.ndim:
        raise RuntimeError(
            f"permute: number of dims don't match: got {len(dims)} dims for a "
            f"{x.ndim}-d tensor of shape {x.shape}"
        )
    dims = tuple(normalize_dim("permute", d, x.ndim) for d in dims)
    if sorted(dims) != list(range(x.ndim)):
        raise RuntimeError(f"permute: repeated dim in {dims}")
    if dims == tuple(range(x.ndim)):
        return x
    return Permute.apply(x, dims=dims)


def transpose(x, dim0, dim1):
    if x.ndim < 2 and dim0 in (0, -1) and dim1 in (0, -1):
        return x
    d0 = normalize_dim("transpose", dim0, x.ndim)
    d1 = normalize_dim("transpose", dim1, x.ndim)
    dims = list(range(x.ndim))
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return permute(x, dims)


def squeeze(x, dim=None):
    if dim is None:
        return reshape(x, tuple(s for s in x.shape if s != 1))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    dims = {normalize_dim("squeeze", d, x.ndim) for d in dims}
    return reshape(x, tuple(s for i, s in enumerate(x.shape) if not (i in dims and s == 1)))


def unsqueeze(x, dim):
    d = normalize_dim("unsqueeze", dim, x.ndim + 1)
    return reshape(x, x.shape[:d] + (1,) + x.shape[d:])


class BroadcastTo(Function):
    keeps_inputs = False  # backward reads no input

    def forward(self, x, shape):
        self.in_shape = x.shape
        return _xp(x).broadcast_to(x, shape)

    def backward(self, gy):
        from gpugrad.ops.reduce import sum_to

        return (sum_to(gy, self.in_shape),)


def broadcast_to(x, shape):
    shape = tuple(shape)
    if shape == x.shape:
        return x
    target = broadcast_shapes("broadcast_to", x.shape, shape)
    if target != shape:
        raise RuntimeError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}")
    return BroadcastTo.apply(x, shape=shape)


def expand(x, *sizes):
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = tuple(sizes[0])
    lead = len(sizes) - x.ndim
    if lead < 0:
        raise RuntimeError(
            f"expand: the number of sizes ({len(sizes)}) must be at least the number of "
            f"dimensions of shape {x.shape}"
        )
    shape = tuple(
        x.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(sizes)
    )
    return broadcast_to(x, shape)


def expand_as(x, other):
    return broadcast_to(x, other.shape)


class Cat(Function):
    keeps_inputs = False  # backward reads no input

    def forward(self, *xs, dim):
        self.dim = dim
        self.sizes = [x.shape[dim] for x in xs]
        return _xp(xs[0]).concatenate(xs, axis=dim)

    def backward(self, gy):
        return tuple(split(gy, self.sizes, self.dim))


def cat(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    _check_tensors("cat", tensors)
    ref = tensors[0]
    if ref.ndim == 0:
        raise ValueError("cat: zero-dimensional tensors cannot be concatenated")
    d = normalize_dim("cat", dim, ref.ndim)
    for i, t in enumerate(tensors[1:], 1):
        if t.ndim != ref.ndim or any(
            a != b for j, (a, b) in enumerate(zip(t.shape, ref.shape)) if j != d
        ):
            raise ValueError(
                f"cat: sizes of tensors must match except in dimension {d}: tensor 0 has "
                f"shape {ref.shape}, tensor {i} has shape {t.shape}"
            )
    dt = ref.dtype
    for t in tensors[1:]:
        from gpugrad.ops.common import result_dtype

        dt = result_dtype(dt, t.dtype)
    tensors = [t if t.dtype == dt else t.to(dt) for t in tensors]
    return Cat.apply(*tensors, dim=d)


concat = cat
concatenate = cat


def _check_tensors(op, tensors):
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: expected a sequence of Tensors, element {i} is a "
                            f"{type(t).__name__}")


def stack(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors")
    _check_tensors("stack", tensors)
    for i, t in enumerate(tensors[1:], 1):
        if t.shape != tensors[0].shape:
            raise ValueError(
                f"stack: expects each tensor to be equal size, but got {tensors[0].shape} at "
                f"entry 0 and {t.shape} at entry {i}"
            )
    d = normalize_dim("stack", dim, tensors[0].ndim + 1)
    return cat([unsqueeze(t, d) for t in tensors], dim=d)


def split(x, split_size_or_sections, dim=0):
    """Views along `dim`: pieces of a given size (the last may be smaller) or listed sizes."""
    from gpugrad.ops.indexing import getitem

    d = normalize_dim("split", dim, x.ndim)
    n = x.shape[d]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        if step <= 0:
            raise ValueError(f"split: split_size must be positive, got {step}")
        sizes = [min(step, n - i) for i in range(0, n, step)] or [0]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise ValueError(
                f"split: sizes {sizes} sum to {sum(sizes)} but dimension {d} has size {n}"
            )
    pieces, start = [], 0
    for size in sizes:
        index = (slice(None),) * d + (slice(start, start + size),)
        pieces.append(getitem(x, index))
        start += size
    return tuple(pieces)


def chunk(x, chunks, dim=0):
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    n = x.shape[normalize_dim("chunk", dim, x.ndim)]
    return split(x, max(1, -(-n // chunks)), dim)


class Cast(Function):
    keeps_inputs = False  # backward reads no input

    def forward(self, x, dtype):
        self.in_dtype = x.dtype
        return x.astype(dtype)

    def backward(self, gy):
        return (cast(gy, self.in_dtype),)


def cast(x, dtype):
    dtype = np.dtype(dtype)
    if dtype == x.dtype:
        return x
    if x.requires_grad and dtype.kind != "f":
        return Tensor(x.data.astype(dtype), x.device)
    return Cast.apply(x, dtype=dtype)


class ToDevice(Function):
    keeps_inputs = False  # backward reads no input

    def forward(self, x, target):
        self.source = self.device
        with backend.device_context(target):
            return backend.to_device(x, target)

    def backward(self, gy):
        return (to_device(gy, self.source),)

    @classmethod
    def apply(cls, x, target):
        out = super().apply(x, target=target)
        out.device = target
        return out


def to_device(x, device):
    return ToDevice.apply(x, device)


class Contiguous(Function):
    keeps_inputs = False  # backward reads no input

    def forward(self, x):
        return _xp(x).ascontiguousarray(x)

    def backward(self, gy):
        return (gy,)


def contiguous(x):
    return Contiguous.apply(x)


class Clone(Function):
    keeps_inputs = False  # backward reads no input

    def forward(self, x):
        return x.copy()

    def backward(self, gy):
        return (gy,)


def clone(x):
    return Clone.apply(x)
