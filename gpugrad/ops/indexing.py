"""Indexing: `x[index]` and its adjoint (scatter-add), gather, and in-place `x[index] = v`.

Basic indices (ints, slices, None, Ellipsis) select a view; integer-array and boolean-mask
indices copy. The gradient of an index scatters back, and repeated integer indices add up.
"""

from __future__ import annotations

import numpy as np

from gpugrad import backend
from gpugrad import grad_mode
from gpugrad.autograd.function import Function
from gpugrad.ops.common import normalize_dim
from gpugrad.tensor import Tensor


def _xp(a):
    return backend.array_module(a)


def _convert_index(x: Tensor, index):
    """Turn Tensors and lists inside an index into arrays on x's device; check masks."""
    if not isinstance(index, tuple):
        index = (index,)
    out = []
    basic = True
    xp = backend.xp_for(x.device)
    for item in index:
        if isinstance(item, Tensor):
            if item.device != x.device:
                raise RuntimeError(
                    f"index: indices are on {item.device} but the indexed tensor is on {x.device}"
                )
            if item.dtype.kind == "f":
                raise IndexError(
                    f"index: tensors used as indices must be long or bool, got {item.dtype}"
                )
            item = item.data
        elif isinstance(item, (list, np.ndarray)) or (
            backend.cupy_module() is not None and isinstance(item, backend.cupy_module().ndarray)
        ):
            item = backend.to_device(np.asarray(item) if isinstance(item, list) else item,
                                     x.device)
            if item.dtype.kind == "f":
                raise IndexError(f"index: arrays used as indices must be integer or bool, "
                                 f"got {item.dtype}")
        if hasattr(item, "dtype") and hasattr(item, "ndim"):
            basic = False
            if item.dtype == np.bool_:
                _check_mask(x, index, len(out), item)
            elif item.dtype.kind in "iu" and item.dtype != np.int64:
                item = item.astype(np.int64)
        elif not (item is None or item is Ellipsis or isinstance(item, (int, slice, np.integer))):
            raise IndexError(f"index: unsupported index type {type(item).__name__}")
        out.append(item)
    del xp
    return tuple(out), basic


def _check_mask(x, index, position, mask):
    # A boolean mask must match the dims it covers (dims before it: one per int/slice/array).
    dims_before = sum(1 for it in index[:position] if it is not None and it is not Ellipsis)
    covered = x.shape[dims_before : dims_before + mask.ndim]
    if Ellipsis not in index[:position] and tuple(covered) != tuple(mask.shape):
        raise IndexError(
            f"index: the shape of the mask {tuple(mask.shape)} does not match the shape of "
            f"the indexed tensor {x.shape} at dims {dims_before}..{dims_before + mask.ndim - 1}"
        )


class GetItem(Function):
    def forward(self, x, index, basic):
        self.index, self.basic, self.in_shape = index, basic, x.shape
        try:
            return x[index]
        except IndexError as e:
            raise IndexError(f"index: {e} (tensor of shape {x.shape})") from None

    def backward(self, gy):
        return (IndexBackward.apply(gy, index=self.index, basic=self.basic, shape=self.in_shape),)


class IndexBackward(Function):
    """Zeros of `shape` with gy added at `index` (the adjoint of GetItem)."""

    def forward(self, gy, index, basic, shape):
        self.index, self.basic = index, basic
        xp = _xp(gy)
        gx = xp.zeros(shape, dtype=gy.dtype)
        if basic:
            gx[index] = gy  # a basic index never repeats an element
        else:
            backend.scatter_add(gx, index, gy)
        return gx

    def backward(self, ggx):
        return (GetItem.apply(ggx, index=self.index, basic=self.basic),)


def getitem(x, index):
    index, basic = _convert_index(x, index)
    return GetItem.apply(x, index=index, basic=basic)


def setitem_(x, index, value):
    """x[index] = value, in place; not recorded (PyTorch's in-place autograd is not modelled)."""
    if grad_mode.is_grad_enabled() and x.requires_grad:
        raise RuntimeError(
            "setitem: a tensor that requires grad can't be modified in place while recording; "
            "use gg.where / masked_fill, or wrap in gg.no_grad()"
        )
    index, _ = _convert_index(x, index)
    if isinstance(value, Tensor):
        if value.device != x.device:
            raise RuntimeError(
                f"setitem: value is on {value.device} but the tensor is on {x.device}"
            )
        value = value.data
    try:
        x.data[index] = value
    except ValueError as e:
        shape = getattr(value, "shape", ())
        raise ValueError(
            f"setitem: a value of shape {tuple(shape)} cannot be assigned to the selection of "
            f"shape {tuple(x.data[index].shape)} ({e})"
        ) from None


def _along_index(xp, index, dim):
    """Full fancy-index tuple selecting index[..] along `dim` and the identity elsewhere."""
    grids = []
    for d in range(index.ndim):
        if d == dim:
            grids.append(index)
        else:
            shape = [1] * index.ndim
            shape[d] = index.shape[d]
            grids.append(xp.arange(index.shape[d]).reshape(shape))
    return tuple(grids)


class Gather(Function):
    def forward(self, x, index, dim):
        self.index, self.dim, self.in_shape = index, dim, x.shape
        return _xp(x).take_along_axis(x, index, axis=dim)

    def backward(self, gy):
        return (ScatterAlong.apply(gy, index=self.index, dim=self.dim, shape=self.in_shape),)


class ScatterAlong(Function):
    """Zeros of `shape` with gy added along `dim` at `index` (the adjoint of Gather)."""

    def forward(self, gy, index, dim, shape):
        self.index, self.dim = index, dim
        xp = _xp(gy)
        gx = xp.zeros(shape, dtype=gy.dtype)
        backend.scatter_add(gx, _along_index(xp, index, dim), gy)
        return gx

    def backward(self, ggx):
        return (Gather.apply(ggx, index=self.index, dim=self.dim),)


def gather(x, dim, index):
    """out[i][j] = x[i][index[i][j]] for dim=1 (PyTorch's gather)."""
    d = normalize_dim("gather", dim, x.ndim)
    if index.dtype != np.int64:
        raise RuntimeError(f"gather: expected an int64 index, got {index.dtype}")
    if index.ndim != x.ndim:
        raise RuntimeError(
            f"gather: index has {index.ndim} dims but the input has {x.ndim} (shape {x.shape})"
        )
    if index.device != x.device:
        raise RuntimeError(f"gather: index is on {index.device} but input on {x.device}")
    if index.numel():
        xp = backend.array_module(index.data)
        lo, hi = int(xp.min(index.data)), int(xp.max(index.data))
        if lo < 0 or hi >= x.shape[d]:
            bad = lo if lo < 0 else hi
            raise IndexError(
                f"gather: index {bad} is out of bounds for dimension {d} with size {x.shape[d]}"
            )
    return Gather.apply(x, index=index.data, dim=d)


def scatter_along(gy: Tensor, index: Tensor, dim: int, shape) -> Tensor:
    return ScatterAlong.apply(gy, index=index.data, dim=dim, shape=tuple(shape))
