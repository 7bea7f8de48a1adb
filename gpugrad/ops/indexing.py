"""Indexing: `x[index]` and its adjoint (scatter-add), gather, and in-place `x[index] = v`.

Basic indices (ints, slices, None, Ellipsis) select a view; integer-array and boolean-mask
indices copy. The gradient of an index scatters back, and repeated integer indices add up.

Ints mixed with advanced indices follow PyTorch, not NumPy: PyTorch applies each int as a
select first and only then the advanced indices, so `x[0, :, [1, 2]]` has shape (3, 2) where
NumPy (which broadcasts the int with the list) gives (2, 3). Such an index is split into a
basic `pre` index (ints, slices, None; every advanced index replaced by slices) and the
advanced index applied to its result.
"""

from __future__ import annotations

import numbers

import numpy as np

from gpugrad import backend
from gpugrad import grad_mode
from gpugrad.autograd.function import Function
from gpugrad.ops.common import check_scalar_fits, is_int, normalize_dim
from gpugrad.tensor import Tensor


def _xp(a):
    return backend.array_module(a)


def _is_array(item) -> bool:
    cp = backend.cupy_module()
    return isinstance(item, np.ndarray) or (cp is not None and isinstance(item, cp.ndarray))


def _list_is_tuple(index: list) -> bool:
    """PyTorch (2.13, as NumPy before 1.23) reads a list shorter than 32 that holds a
    sequence, a tensor, a slice, None or Ellipsis as a tuple: x[[[0, 1], [1, 0]]] is
    x[[0, 1], [1, 0]], and x[[0, slice(None)]] is x[0, :]."""
    if len(index) >= 32:
        return False
    return any(
        isinstance(item, (Tensor, list, tuple, slice)) or _is_array(item)
        or item is None or item is Ellipsis
        for item in index
    )


def _convert_index(x: Tensor, index):
    """Turn Tensors and lists inside an index into arrays on x's device; check masks.

    Returns (index, basic, pre): `pre` is None, or a basic index to apply before `index`
    (ints mixed with advanced indices, see the module docstring)."""
    if isinstance(index, list) and _list_is_tuple(index):
        index = tuple(index)
    if not isinstance(index, tuple):
        index = (index,)
    out = []
    basic = True
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
        elif isinstance(item, list) or _is_array(item):
            if isinstance(item, list):
                item = np.asarray(item)
                if item.size == 0 and item.dtype.kind == "f":
                    item = item.astype(np.int64)  # [] selects nothing, as in PyTorch
            item = backend.to_device(item, x.device)
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
    pre = None
    if not basic:
        out, pre = _split_ints(out)
    return tuple(out), basic, pre


def _split_ints(items):
    """(advanced index, basic pre-index) when ints mix with advanced indices, else (items, None).

    A 0-d integer array counts as an int, as a 0-d integer tensor does in PyTorch."""
    ints = [
        is_int(it) or (hasattr(it, "ndim") and it.ndim == 0 and it.dtype.kind in "iu")
        for it in items
    ]
    is_adv = [hasattr(it, "ndim") and not ints[k] or isinstance(it, (bool, np.bool_))
              for k, it in enumerate(items)]
    if not any(ints) or not any(is_adv):
        return items, None
    pre, post = [], []
    for k, it in enumerate(items):
        if ints[k]:
            pre.append(int(it))  # applied as a select; gone from the advanced step
        elif is_adv[k]:
            # A mask covers one dim per mask dim (a 0-d bool, none); the advanced step keeps it.
            if getattr(it, "dtype", None) == np.bool_ or isinstance(it, bool):
                pre.extend([slice(None)] * getattr(it, "ndim", 0))
            else:
                pre.append(slice(None))
            post.append(it)
        elif it is None:
            pre.append(None)
            post.append(slice(None))  # the new dim exists after the pre step
        elif it is Ellipsis:
            pre.append(Ellipsis)
            post.append(Ellipsis)
        else:  # a slice
            pre.append(it)
            post.append(slice(None))
    return post, tuple(pre)


def _check_mask(x, index, position, mask):
    # A boolean mask must match the dims it covers: those after the dims its predecessors
    # cover (an int, slice or integer array: one; a mask: one per mask dim; None: none).
    before = index[:position]
    if any(it is Ellipsis for it in before):
        return  # NumPy checks it, knowing where the ellipsis ends
    dims_before = 0
    for it in before:
        if it is None or isinstance(it, (bool, np.bool_)):
            continue
        dtype = getattr(it, "dtype", None)
        dims_before += it.ndim if dtype == np.bool_ and hasattr(it, "ndim") else 1
    covered = x.shape[dims_before : dims_before + mask.ndim]
    if tuple(covered) != tuple(mask.shape):
        raise IndexError(
            f"index: the shape of the mask {tuple(mask.shape)} does not match the shape of "
            f"the indexed tensor {x.shape} at dims {dims_before}..{dims_before + mask.ndim - 1}"
        )


class GetItem(Function):
    keeps_inputs = False  # backward reads no input

    def forward(self, x, index, basic, pre=None):
        self.index, self.basic, self.pre, self.in_shape = index, basic, pre, x.shape
        try:
            if pre is not None:
                x = x[pre]
            return x[index]
        except IndexError as e:
            raise IndexError(f"index: {e} (tensor of shape {self.in_shape})") from None

    def backward(self, gy):
        return (IndexBackward.apply(gy, index=self.index, basic=self.basic, shape=self.in_shape,
                                    pre=self.pre),)


class IndexBackward(Function):
    """Zeros of `shape` with gy added at `index` (the adjoint of GetItem)."""

    keeps_inputs = False  # backward reads no input

    def forward(self, gy, index, basic, shape, pre=None):
        self.index, self.basic, self.pre = index, basic, pre
        xp = _xp(gy)
        gx = xp.zeros(shape, dtype=gy.dtype)
        target = gx if pre is None else gx[pre]  # a basic index: a view into gx
        if basic:
            target[index] = gy  # a basic index never repeats an element
        else:
            backend.scatter_add(target, index, gy)
        return gx

    def backward(self, ggx):
        return (GetItem.apply(ggx, index=self.index, basic=self.basic, pre=self.pre),)


def getitem(x, index):
    index, basic, pre = _convert_index(x, index)
    return GetItem.apply(x, index=index, basic=basic, pre=pre)


def setitem_(x, index, value):
    """x[index] = value, in place; not recorded (PyTorch's in-place autograd is not modelled)."""
    if grad_mode.is_grad_enabled() and x.requires_grad:
        raise RuntimeError(
            "setitem: a tensor that requires grad can't be modified in place while recording; "
            "use gg.where / masked_fill, or wrap in gg.no_grad()"
        )
    if grad_mode.is_grad_enabled() and isinstance(value, Tensor) and value.requires_grad:
        # PyTorch records the write (CopySlices); gpugrad has no in-place autograd, so the
        # gradient to `value` would be lost without a word.
        raise RuntimeError(
            "setitem: the assigned value requires grad, but gpugrad does not record in-place "
            "writes and its gradient would be lost; build the result out of place (gg.where, "
            "gg.cat, masked_fill), or assign value.detach() / under gg.no_grad()"
        )
    index, _, pre = _convert_index(x, index)
    if isinstance(value, Tensor):
        if value.device != x.device:
            raise RuntimeError(
                f"setitem: value is on {value.device} but the tensor is on {x.device}"
            )
        value = value.data
    elif isinstance(value, numbers.Number):
        value = check_scalar_fits("setitem", value, x.dtype, floats=False)
    target = x.data if pre is None else x.data[pre]  # a basic index: a view into x.data
    try:
        target[index] = value
    except ValueError as e:
        shape = getattr(value, "shape", ())
        raise ValueError(
            f"setitem: a value of shape {tuple(shape)} cannot be assigned to the selection of "
            f"shape {tuple(target[index].shape)} ({e})"
        ) from None


def _along_index(xp, index, dim):
    """Full fancy-index tuple selecting index[..] along `dim` and the identity elsewhere: for
    d != dim, position i of the index reads position i of the input (the index may be
    smaller than the input there, as in PyTorch)."""
    grids = []
    for d in range(index.ndim):
        if d == dim:
            grids.append(index)
        else:
            shape = [1] * index.ndim
            shape[d] = index.shape[d]
            grids.append(xp.arange(index.shape[d]).reshape(shape))
    return tuple(grids)


def _nonempty(shape):
    # PyTorch's gather/scatter read a 0-d tensor as one of shape (1,).
    return tuple(shape) if len(shape) else (1,)


class Gather(Function):
    keeps_inputs = False  # backward reads no input

    def forward(self, x, index, dim):
        self.index, self.dim, self.in_shape = index, dim, x.shape
        xp = _xp(x)
        ix = index.reshape(_nonempty(index.shape))
        y = x.reshape(_nonempty(x.shape))[_along_index(xp, ix, dim)]
        return y.reshape(index.shape)

    def backward(self, gy):
        return (ScatterAlong.apply(gy, index=self.index, dim=self.dim, shape=self.in_shape),)


class ScatterAlong(Function):
    """Zeros of `shape` with gy added along `dim` at `index` (the adjoint of Gather)."""

    keeps_inputs = False  # backward reads no input

    def forward(self, gy, index, dim, shape):
        self.index, self.dim = index, dim
        xp = _xp(gy)
        gx = xp.zeros(_nonempty(shape), dtype=gy.dtype)
        ix = index.reshape(_nonempty(index.shape))
        backend.scatter_add(gx, _along_index(xp, ix, dim), gy.reshape(ix.shape))
        return gx.reshape(shape)

    def backward(self, ggx):
        return (Gather.apply(ggx, index=self.index, dim=self.dim),)


def _check_along(op, shape, index, d, int_dtypes):
    """PyTorch's gather/scatter checks: an int index tensor of the same rank (0-d counts as
    1-d), no larger than `shape` outside dim `d`, and in [0, shape[d])."""
    if not isinstance(index, Tensor):
        raise TypeError(f"{op}: index must be a Tensor, got {type(index).__name__}")
    if index.dtype not in int_dtypes:
        names = "/".join(str(np.dtype(t)) for t in int_dtypes)
        raise RuntimeError(f"{op}: expected dtype {names} for index, got {index.dtype}")
    if len(_nonempty(index.shape)) != len(_nonempty(shape)):
        raise RuntimeError(
            f"{op}: index must have the same number of dimensions as the input, got index of "
            f"shape {index.shape} and input of shape {tuple(shape)}"
        )
    if index.numel() == 0:
        return
    ishape, xshape = _nonempty(index.shape), _nonempty(shape)
    for k, (i, s) in enumerate(zip(ishape, xshape)):
        if k != d and i > s:
            raise RuntimeError(
                f"{op}: size does not match at dimension {k}: expected index {index.shape} to "
                f"be no larger than the input {tuple(shape)} apart from dimension {d}"
            )
    xp = backend.array_module(index.data)
    lo, hi = int(xp.min(index.data)), int(xp.max(index.data))
    if lo < 0 or hi >= xshape[d]:
        bad = lo if lo < 0 else hi
        raise IndexError(
            f"{op}: index {bad} is out of bounds for dimension {d} with size {xshape[d]}"
        )


def gather(x, dim, index):
    """out[i][j] = x[i][index[i][j]] for dim=1 (PyTorch's gather); the output has the index's
    shape, which may be smaller than the input's outside `dim`."""
    d = normalize_dim("gather", dim, x.ndim)
    _check_along("gather", x.shape, index, d, (backend.int64, backend.int32))
    if index.device != x.device:
        raise RuntimeError(f"gather: index is on {index.device} but input on {x.device}")
    return Gather.apply(x, index=index.data.astype(backend.int64, copy=False), dim=d)


def scatter_along(gy: Tensor, index: Tensor, dim: int, shape) -> Tensor:
    """Zeros of `shape` with gy added along `dim` at `index` (max/min's backward)."""
    shape = tuple(shape)
    d = normalize_dim("scatter_along", dim, len(shape))
    _check_along("scatter_along", shape, index, d, (backend.int64, backend.int32))
    if tuple(gy.shape) != tuple(index.shape):
        raise RuntimeError(
            f"scatter_along: expected the values to have the index's shape {index.shape}, "
            f"got {gy.shape}"
        )
    return ScatterAlong.apply(gy, index=index.data.astype(backend.int64, copy=False), dim=d,
                              shape=shape)


def nonzero(x, as_tuple=False):
    """Indices of the nonzero elements, (n, ndim) or a tuple of ndim 1-d tensors; a 0-d input
    reads as one of shape (1,) for the tuple form and gives (1, 0) / (0, 0), as in PyTorch."""
    xp = _xp(x.data)
    if x.ndim == 0:
        count = int(bool(x.data))
        if as_tuple:
            return (Tensor(xp.zeros(count, dtype=backend.int64), x.device),)
        return Tensor(xp.zeros((count, 0), dtype=backend.int64), x.device)
    idx = xp.nonzero(x.data)
    if as_tuple:
        return tuple(Tensor(i.astype(backend.int64), x.device) for i in idx)
    return Tensor(xp.stack(idx, axis=1).astype(backend.int64), x.device)
