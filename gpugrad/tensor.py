"""The Tensor: an array on a device, plus the tape links (`grad_fn`) autograd walks backward.

A Tensor holds its array in `.data` (NumPy on the CPU, CuPy on CUDA). Its methods are thin
forwards to the ops in `gpugrad.ops`, which hold every forward and backward formula.
"""

from __future__ import annotations

import numbers

import numpy as np

from gpugrad import backend
from gpugrad import grad_mode


class Tensor:
    """A multi-dimensional array that can record the ops applied to it for autograd."""

    __slots__ = ("data", "device", "_requires_grad", "_grad", "grad_fn", "_out_idx", "_hooks",
                 "_retains_grad", "__weakref__")
    __array_priority__ = 1000  # so `ndarray + Tensor` defers to Tensor.__radd__

    def __init__(self, data, device=None, requires_grad=False):
        # Internal constructor: `data` is already an array of the right module for `device`.
        self.data = data
        self.device = backend.CPU if device is None else device
        self._requires_grad = False
        self._grad = None
        self.grad_fn = None
        self._out_idx = 0
        self._hooks = None  # a list once a hook is registered or retain_grad() is called
        self._retains_grad = False
        if requires_grad:
            self.requires_grad = True

    # ------------------------------------------------------------------ attributes

    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag: bool):
        if flag and not backend.is_floating(self.data.dtype):
            raise RuntimeError(
                f"requires_grad: only floating-point tensors can require gradients, "
                f"got dtype {self.data.dtype}"
            )
        if not flag and self.grad_fn is not None:
            raise RuntimeError(
                "requires_grad: cannot turn off requires_grad on a non-leaf tensor; "
                "use .detach() instead"
            )
        self._requires_grad = bool(flag)

    @property
    def grad(self):
        """The gradient backward() accumulated here (None until then)."""
        return self._grad

    @grad.setter
    def grad(self, value):
        # Checked as PyTorch does: a gradient of another shape would broadcast in an
        # optimizer's update, silently, and one of another dtype or device would fail there.
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(
                    f"grad: expected a Tensor or None, got {type(value).__name__}"
                )
            if value.shape != self.shape or value.dtype != self.dtype:
                raise RuntimeError(
                    f"grad: expected a gradient of shape {tuple(self.shape)} and dtype "
                    f"{self.dtype}, got shape {tuple(value.shape)} and dtype {value.dtype}"
                )
            if value.device != self.device:
                raise RuntimeError(
                    f"grad: expected a gradient on {self.device}, got one on {value.device}"
                )
        self._grad = value

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def T(self) -> Tensor:
        return ops.permute(self, tuple(reversed(range(self.ndim))))

    @property
    def mT(self) -> Tensor:
        return ops.transpose(self, -2, -1)

    def size(self, dim: int | None = None):
        if dim is None:
            return self.shape
        return self.shape[dim]

    def numel(self) -> int:
        return int(self.data.size)

    def dim(self) -> int:
        return self.ndim

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def is_floating_point(self) -> bool:
        return backend.is_floating(self.dtype)

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    # ------------------------------------------------------------------ autograd

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) into every leaf's `.grad`."""
        from gpugrad.autograd.engine import backward

        backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph,
                 inputs=inputs)

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor(self.data, self.device)

    def detach_(self) -> Tensor:
        """Make this tensor a leaf that doesn't require grad. Nodes already recorded from it
        keep their link to its producer (they saved it), so a backward through them still
        reaches the tensors before it, as in PyTorch."""
        self.grad_fn = None
        self._requires_grad = False
        self._retains_grad = False
        return self

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        self.requires_grad = requires_grad
        return self

    def register_hook(self, hook):
        """Call `hook(grad)` when this tensor's gradient is computed; it may return a new one."""
        if not self.requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that "
                               "doesn't require gradient")
        if self._hooks is None:
            self._hooks = []
        if self.grad_fn is not None:
            # The node keeps the same list: the hook runs even when this Tensor object is
            # gone before backward (a module's intermediate), as PyTorch keeps it on grad_fn.
            node_hooks = self.grad_fn.__dict__.setdefault("output_hooks", {})
            node_hooks[self._out_idx] = self._hooks
        self._hooks.append(hook)
        return _HookHandle(self._hooks, hook)

    def retain_grad(self) -> None:
        """Keep `.grad` for this non-leaf tensor after backward, as PyTorch does: the engine
        stores the gradient after all of the tensor's hooks, also those registered later."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad: can't retain_grad on a tensor that has "
                               "requires_grad=False")
        if self.grad_fn is None:
            return  # a leaf keeps its gradient anyway
        if self._hooks is None:
            self._hooks = []  # the engine looks at retain_grad only where _hooks is set
        self._retains_grad = True

    @property
    def retains_grad(self) -> bool:
        """Whether retain_grad() was called on this non-leaf tensor."""
        return self._retains_grad and self.grad_fn is not None

    # ------------------------------------------------------------------ conversion

    def item(self):
        return self._scalar("item")

    def _scalar(self, caller: str):
        if self.data.size != 1:
            raise ValueError(
                f"{caller}: only a one-element tensor can be converted to a Python scalar, "
                f"got shape {self.shape}"
            )
        return self.data.item()

    def numpy(self) -> np.ndarray:
        """A NumPy array: shares memory on the CPU, a copy from the GPU."""
        return backend.to_numpy(self.data)

    def tolist(self):
        return self.numpy().tolist()

    def __array__(self, dtype=None, copy=None):
        if self.device.type != "cpu":
            raise TypeError(
                f"can't convert a {self.device} tensor to a NumPy array implicitly; "
                "call .cpu() (or .numpy()) first"
            )
        a = self.data
        if dtype is not None:
            a = a.astype(dtype, copy=False)
        return np.array(a, copy=True) if copy else a

    def __dlpack__(self, stream=None, **kwargs):
        if stream is not None:
            return self.data.__dlpack__(stream=stream, **kwargs)
        return self.data.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.data.__dlpack_device__()

    def to(self, *args, **kwargs) -> Tensor:
        """`.to(device)`, `.to(dtype)`, `.to(device, dtype)` or `.to(other_tensor)`."""
        dev, dtype = parse_to_args(args, kwargs)
        out = self
        if dtype is not None:
            from gpugrad.factory import check_dtype

            dtype = check_dtype("to", dtype)  # no string or object tensors
            if dtype != out.dtype:
                out = ops.cast(out, dtype)
        if dev is not None:
            dev = backend.as_device(dev)
            if dev != out.device:
                out = ops.to_device(out, dev)
        return out

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self, device=None) -> Tensor:
        if device is None:
            device = "cuda"
        elif isinstance(device, int):
            device = f"cuda:{device}"
        return self.to(device)

    def float(self) -> Tensor:
        return self.to(backend.float32)

    def double(self) -> Tensor:
        return self.to(backend.float64)

    def half(self) -> Tensor:
        return self.to(backend.float16)

    def long(self) -> Tensor:
        return self.to(backend.int64)

    def int(self) -> Tensor:
        return self.to(backend.int32)

    def bool(self) -> Tensor:
        return self.to(backend.bool_)

    def type(self, dtype=None):
        if dtype is None:
            return str(self.dtype)
        return self.to(dtype)

    def contiguous(self) -> Tensor:
        if self.data.flags.c_contiguous:
            return self
        return ops.contiguous(self)

    def clone(self) -> Tensor:
        return ops.clone(self)

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError(
                f"bool: a tensor with {self.data.size} elements is ambiguous as a truth value"
            )
        return bool(self.data.item())

    def __float__(self):
        return float(self._scalar("float()"))

    def __int__(self):
        return int(self._scalar("int()"))

    def __format__(self, spec):
        # As PyTorch: a 0-d tensor formats as its number (f"{loss:.3f}"), any other one as
        # repr() with an empty spec and raises TypeError with a spec.
        if self.ndim == 0:
            return format(self.data.item(), spec)
        return object.__format__(self, spec)

    def __index__(self):
        if backend.is_floating(self.dtype) or self.data.size != 1:
            raise TypeError("only integer tensors of a single element can be used as an index")
        return int(self.item())

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def __repr__(self):
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(",
                               threshold=200, edgeitems=3, precision=4)
        extras = []
        if self.data.size == 0 and self.shape != (0,):
            extras.append(f"size={tuple(self.shape)}")  # `[]` alone hides it, as in PyTorch
        if self.device.type != "cpu":
            extras.append(f"device='{self.device}'")
        if self.dtype not in (backend.get_default_dtype(), backend.int64, backend.bool_):
            extras.append(f"dtype={self.dtype}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{type(self.grad_fn).__name__}Backward>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    # Tensors compare element-wise, so they hash by identity (as in PyTorch).
    __hash__ = object.__hash__

    # ------------------------------------------------------------------ arithmetic

    def __add__(self, other):
        return ops.add(self, other)

    def __radd__(self, other):
        return ops.add(other, self)

    def __sub__(self, other):
        return ops.sub(self, other)

    def __rsub__(self, other):
        return ops.sub(other, self)

    def __mul__(self, other):
        return ops.mul(self, other)

    def __rmul__(self, other):
        return ops.mul(other, self)

    def __truediv__(self, other):
        return ops.div(self, other)

    def __rtruediv__(self, other):
        return ops.div(other, self)

    def __pow__(self, other):
        return ops.pow(self, other)

    def __rpow__(self, other):
        return ops.pow(other, self)

    def __matmul__(self, other):
        return ops.matmul(self, other)

    def __rmatmul__(self, other):
        return ops.matmul(other, self)

    def __neg__(self):
        return ops.neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return ops.abs(self)

    def __lt__(self, other):
        return ops.lt(self, other)

    def __le__(self, other):
        return ops.le(self, other)

    def __gt__(self, other):
        return ops.gt(self, other)

    def __ge__(self, other):
        return ops.ge(self, other)

    def __eq__(self, other):
        if not _compares_elementwise(other):
            return False  # as PyTorch, so `t in [None, ...]` and `t == "a"` work
        return ops.eq(self, other)

    def __ne__(self, other):
        if not _compares_elementwise(other):
            return True
        return ops.ne(self, other)

    def __floordiv__(self, other):
        return ops.floor_divide(self, other)

    def __rfloordiv__(self, other):
        return ops.floor_divide(other, self)

    def __mod__(self, other):
        return ops.remainder(self, other)

    def __rmod__(self, other):
        return ops.remainder(other, self)

    # Bitwise, as in PyTorch: logical on bool tensors, bit by bit on integers, floats raise.
    def __invert__(self):
        return ops.bitwise_not(self)

    def __and__(self, other):
        return ops.bitwise_and(self, other)

    def __rand__(self, other):
        return ops.bitwise_and(other, self)

    def __or__(self, other):
        return ops.bitwise_or(self, other)

    def __ror__(self, other):
        return ops.bitwise_or(other, self)

    def __xor__(self, other):
        return ops.bitwise_xor(self, other)

    def __rxor__(self, other):
        return ops.bitwise_xor(other, self)

    def __getitem__(self, index):
        return ops.getitem(self, index)

    def __setitem__(self, index, value):
        ops.setitem_(self, index, value)

    # ------------------------------------------------------------------ in-place (no graph)

    def _check_inplace(self, op):
        if grad_mode.is_grad_enabled() and self.requires_grad:
            if self.grad_fn is None:
                raise RuntimeError(
                    f"{op}: a leaf Variable that requires grad is being used in an in-place "
                    "operation; wrap the update in gg.no_grad()"
                )
            raise RuntimeError(
                f"{op}: a tensor that requires grad can't be modified in place while "
                "recording; wrap the update in gg.no_grad()"
            )

    def _operand(self, op, other):
        """The array (or number) an in-place op reads from `other`."""
        if isinstance(other, Tensor):
            _check_source(op, other)
            ops.check_same_device(op, self, other)
            return other.data
        if isinstance(other, (list, tuple)):
            return np.asarray(other)  # or `* alpha` would repeat the list
        return other

    def _check_broadcast(self, op, operand):
        """The operand may broadcast to this tensor's shape, never this tensor to another."""
        shape = np.shape(operand)
        if shape == self.shape:
            return
        try:
            full = np.broadcast_shapes(self.shape, shape)
        except ValueError:
            raise RuntimeError(
                f"{op}: an operand of shape {shape} doesn't broadcast to the output's shape "
                f"{self.shape}"
            ) from None
        if full != self.shape:
            raise RuntimeError(
                f"{op}: output with shape {self.shape} doesn't match the broadcast shape {full}"
            )

    def _check_result_type(self, op, other, true_division=False):
        """As PyTorch: an in-place op keeps the dtype, so a result of a higher category
        (float into an integer tensor, integer into a bool one) can't be written back."""
        if isinstance(other, Tensor):
            result = ops.common.tensors_result_dtype(self, other)
        elif isinstance(other, numbers.Number):
            result = ops.common.scalar_dtype(other, self.dtype, op)
        else:  # an array (of either module) or a nested list
            dtype = getattr(other, "dtype", None)
            result = ops.common.result_dtype(
                self.dtype, dtype if dtype is not None else np.asarray(other).dtype
            )
        if true_division and result.kind != "f":
            result = backend.get_default_dtype()  # integers divide into floats
        category = ops.common.DTYPE_CATEGORY  # an in-place op can't write a higher one back
        if category[result.kind] > category[self.dtype.kind]:
            raise RuntimeError(
                f"{op}: result type {result} can't be cast to the desired output type "
                f"{self.dtype}"
            )

    def zero_(self) -> Tensor:
        self._check_inplace("zero_")
        self.data[...] = 0
        return self

    def fill_(self, value) -> Tensor:
        self._check_inplace("fill_")
        if isinstance(value, numbers.Number):
            # Checked as gg.full checks it: 300 into uint8 raises, as in PyTorch.
            value = ops.common.check_scalar_fits("fill_", value, self.dtype)
        self.data[...] = self._operand("fill_", value)
        return self

    def copy_(self, src) -> Tensor:
        self._check_inplace("copy_")
        src_data = src
        if isinstance(src, Tensor):
            _check_source("copy_", src)
            src_data = src.data
            if src.device != self.device:
                src_data = backend.to_device(src_data, self.device)
        self._check_broadcast("copy_", src_data)
        self.data[...] = src_data
        return self

    def add_(self, other, alpha=1) -> Tensor:
        return self._arith_("add_", other, alpha)

    def sub_(self, other, alpha=1) -> Tensor:
        return self._arith_("sub_", other, alpha)

    def mul_(self, other) -> Tensor:
        return self._arith_("mul_", other)

    def div_(self, other) -> Tensor:
        return self._arith_("div_", other)

    def _arith_(self, op, other, alpha=1):
        """self (op)= other (times alpha, for add_/sub_), in place, keeping the dtype."""
        self._check_inplace(op)
        o = self._operand(op, other)
        self._check_result_type(op, other, true_division=op == "div_")
        if alpha != 1:
            if isinstance(alpha, float) and self.dtype.kind != "f":
                raise RuntimeError(f"{op}: for integral input tensors, argument alpha must "
                                   "not be a floating point number")
            o = o * alpha
        if isinstance(o, numbers.Integral) and self.dtype.kind in "iu":
            # A Python int wraps into the tensor's dtype, as in PyTorch (uint8 += 300 adds 44;
            # NumPy would raise OverflowError).
            o = np.asarray(o).astype(self.dtype)
        self._check_broadcast(op, o)
        if op == "mul_":
            self.data *= o
        elif op == "div_":
            self.data /= o
        elif op == "sub_":
            self.data -= o
        else:
            self.data += o
        return self

    # Augmented assignment is in place where nothing is recorded, as in PyTorch: `p -= lr *
    # p.grad` under no_grad() updates p (and every alias of it). Where the tape records
    # either operand (`loss += term`, a residual `h += x`) it is the out-of-place op, bound to
    # the name: gpugrad records no in-place ops, and the values and gradients are PyTorch's
    # (only an alias of the old tensor keeps the old values). A leaf that requires grad
    # raises, as in PyTorch.
    def _augmented(self, inplace, outofplace, other):
        if grad_mode.is_grad_enabled() and not (self._requires_grad and self.grad_fn is None) \
                and (self._requires_grad or (isinstance(other, Tensor) and other._requires_grad)):
            return outofplace(self, other)
        return inplace(other)

    def __iadd__(self, other):
        return self._augmented(self.add_, ops.add, other)

    def __isub__(self, other):
        return self._augmented(self.sub_, ops.sub, other)

    def __imul__(self, other):
        return self._augmented(self.mul_, ops.mul, other)

    def __itruediv__(self, other):
        return self._augmented(self.div_, ops.div, other)

    # The other augmented assignments have no in-place method: the result of the op is
    # written back under the same rules (in place unless recorded, dtype kept).
    def _augmented_write(self, op_name, outofplace, other):
        def write(o):
            self._check_inplace(op_name)
            if isinstance(o, Tensor):
                _check_source(op_name, o)
            result = outofplace(self, o)
            category = ops.common.DTYPE_CATEGORY
            if category[result.dtype.kind] > category[self.dtype.kind]:
                raise RuntimeError(f"{op_name}: result type {result.dtype} can't be cast to the "
                                   f"desired output type {self.dtype}")
            self._check_broadcast(op_name, result.data)
            self.data[...] = result.data
            return self

        return self._augmented(write, outofplace, other)

    def __ipow__(self, other):
        return self._augmented_write("pow_", ops.pow, other)

    def __ifloordiv__(self, other):
        return self._augmented_write("floor_divide_", ops.floor_divide, other)

    def __imod__(self, other):
        return self._augmented_write("remainder_", ops.remainder, other)

    def __iand__(self, other):
        return self._augmented_write("bitwise_and_", ops.bitwise_and, other)

    def __ior__(self, other):
        return self._augmented_write("bitwise_or_", ops.bitwise_or, other)

    def __ixor__(self, other):
        return self._augmented_write("bitwise_xor_", ops.bitwise_xor, other)

    def clamp_(self, min=None, max=None) -> Tensor:
        self._check_inplace("clamp_")
        xp = backend.array_module(self.data)
        xp.clip(self.data, min, max, out=self.data)
        return self

    def normal_(self, mean=0.0, std=1.0) -> Tensor:
        self._check_inplace("normal_")
        from gpugrad.factory import _draw

        gen = backend.generator(self.device)
        self.data[...] = _draw(gen.standard_normal, self.shape, self.dtype) * std + mean
        return self

    def uniform_(self, a=0.0, b=1.0) -> Tensor:
        self._check_inplace("uniform_")
        from gpugrad.factory import _draw

        gen = backend.generator(self.device)
        self.data[...] = _draw(gen.random, self.shape, self.dtype) * (b - a) + a
        return self


def parse_to_args(args, kwargs):
    """The (device, dtype) of a `.to(...)` call; either may be None (Modules use it too)."""
    kwargs = dict(kwargs)
    device = kwargs.pop("device", None)
    dtype = kwargs.pop("dtype", None)
    kwargs.pop("non_blocking", None)
    if kwargs:
        raise TypeError(f"to: unexpected arguments {sorted(kwargs)}")
    for a in args:
        if isinstance(a, Tensor):
            device, dtype = a.device, a.dtype
        elif isinstance(a, (str, backend.device)):
            device = a
        elif a is not None:
            dtype = a
    return device, dtype


class _HookHandle:
    def __init__(self, hooks, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self):
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


def _check_source(op, src: Tensor) -> None:
    """An in-place op reading a tensor that requires grad: PyTorch would record the op,
    gpugrad would drop the gradient silently, so it refuses while recording."""
    if src._requires_grad and grad_mode.is_grad_enabled():
        raise RuntimeError(
            f"{op}: the source requires grad and gpugrad records no in-place ops; use "
            "torch-style out-of-place ops (x = ...) or detach the source"
        )


def _compares_elementwise(other) -> bool:
    """Whether `t == other` compares elements: for Tensors, numbers and arrays (a NumPy array
    as a tensor; another module's array raises in `eq`). Anything else (None, a string, a
    list) is simply not equal to a tensor, as in PyTorch."""
    return isinstance(other, (Tensor, numbers.Number, np.generic)) or (
        hasattr(other, "shape") and hasattr(other, "dtype"))


def _add_method_forwards():
    """Tensor methods that are plain forwards to the op of the same name."""
    names = [
        "exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid", "relu", "abs", "neg", "clamp",
        "clip", "maximum", "minimum", "sum", "mean", "var", "std", "amax", "amin", "max", "min",
        "argmax", "argmin", "prod", "reshape", "view", "flatten", "transpose", "permute",
        "squeeze", "unsqueeze", "expand", "broadcast_to", "split", "chunk", "softmax",
        "log_softmax", "matmul", "pow", "add", "sub", "mul", "div", "lt", "le", "gt", "ge", "eq",
        "ne", "log1p", "square", "rsqrt", "reciprocal", "sign", "expand_as", "view_as",
        "reshape_as", "masked_fill", "logsumexp", "all", "any", "floor", "ceil", "round",
        "isnan", "isinf", "isfinite", "norm", "mm", "bmm", "where", "gather", "nonzero",
        "floor_divide", "remainder", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not",
        "logical_and", "logical_or", "logical_xor", "logical_not", "erf", "expm1",
    ]

    def make(name):
        def method(self, *args, **kwargs):
            return getattr(ops, name)(self, *args, **kwargs)

        method.__name__ = name
        method.__doc__ = f"See gpugrad.{name}."
        return method

    for name in names:
        setattr(Tensor, name, make(name))
    Tensor.absolute = Tensor.abs
    Tensor.multiply = Tensor.mul
    Tensor.divide = Tensor.div
    Tensor.subtract = Tensor.sub
    Tensor.swapaxes = Tensor.transpose


from gpugrad import ops  # noqa: E402  (ops build on Tensor, so they load after it)

_add_method_forwards()
