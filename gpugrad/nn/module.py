"""`Module`: the base class of layers, with PyTorch's registration, traversal and state API.

Attributes that are Parameters, Modules or registered buffers are kept in three ordered dicts
(`_parameters`, `_buffers`, `_modules`) by `__setattr__`, as in PyTorch, so that
`named_parameters()`, `state_dict()` and `.to()` can walk the tree in definition order.
"""

from __future__ import annotations

import numbers
from collections import OrderedDict, namedtuple

import numpy as np

from gpugrad import backend
from gpugrad import grad_mode
from gpugrad.nn.parameter import Parameter
from gpugrad.tensor import Tensor, parse_to_args


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What `load_state_dict` returns: the keys it could not match, in both directions."""

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


class RemovableHandle:
    """Returned by the `register_*_hook` methods; `remove()` unregisters the hook."""

    _next_id = 0

    def __init__(self, hooks: dict):
        self._hooks = hooks
        self.id = RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def _addindent(s: str, spaces: int) -> str:
    lines = s.split("\n")
    if len(lines) == 1:
        return s
    first = lines.pop(0)
    return first + "\n" + "\n".join(" " * spaces + line for line in lines)


def _parse_to(args, kwargs):
    """`.to(device)`, `.to(dtype)`, `.to(device, dtype)`, `.to(tensor)` -> (device, dtype)."""
    device, dtype = parse_to_args(args, kwargs)
    if device is not None:
        device = backend.as_device(device)
    if dtype is not None:
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(
                f"nn.Module.to only accepts floating point dtypes, but got desired dtype={dtype}"
            )
    return device, dtype


def _move_in_place(t: Tensor, device, dtype, floating_only=True) -> None:
    """Give tensor `t` a new array on `device` / of `dtype`, keeping the same Tensor object."""
    data = t.data
    if dtype is not None and data.dtype != dtype and (
        backend.is_floating(data.dtype) or not floating_only
    ):
        data = data.astype(dtype)
    if device is not None and device != t.device:
        with backend.device_context(device):
            data = backend.to_device(data, device)
        t.device = device
    t.data = data


def _as_array_for(value, target: Tensor):
    """The array of a state-dict entry (Tensor, NumPy array or array-like) on target's device."""
    if isinstance(value, Tensor):
        arr = value.data
        if value.device != target.device:
            with backend.device_context(target.device):
                arr = backend.to_device(arr, target.device)
        return arr
    arr = np.asarray(value)
    with backend.device_context(target.device):
        return backend.to_device(arr, target.device)


def _not_array_like(value) -> str | None:
    """Why `value` can't be a state-dict entry (None if it can): Tensors, NumPy arrays,
    numbers and nested lists of numbers can."""
    if isinstance(value, (Tensor, np.ndarray, np.generic, numbers.Number, list, tuple)) \
            and not isinstance(value, (str, bytes)):
        return None
    return f"{type(value).__name__} {value!r}"[:80]


def _shape_of(value) -> tuple:
    shape = getattr(value, "shape", None)
    if shape is None:
        shape = np.shape(value)
    return tuple(shape)


class Module:
    """Base class for all neural network modules; subclasses define `forward`."""

    training: bool
    _version = 1

    def __init__(self, *args, **kwargs):
        if args or kwargs:
            raise TypeError(
                f"{type(self).__name__}.__init__() got unexpected arguments; "
                "Module.__init__ takes none"
            )
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers_set", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())

    # ------------------------------------------------------------------ calling

    def forward(self, *args, **kwargs):
        raise NotImplementedError(
            f'Module [{type(self).__name__}] is missing the required "forward" function'
        )

    def __call__(self, *args, **kwargs):
        for hook in list(self._forward_pre_hooks.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        out = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, out)
            if result is not None:
                out = result
        return out

    def register_forward_pre_hook(self, hook) -> RemovableHandle:
        """`hook(module, args)` runs before forward; it may return replacement args."""
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    def register_forward_hook(self, hook) -> RemovableHandle:
        """`hook(module, args, output)` runs after forward; it may return a new output."""
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    # ------------------------------------------------------------------ registration

    def _check_name(self, kind: str, name) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {kind} before Module.__init__() call")
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
        if "." in name:
            raise KeyError(f'{kind} name can\'t contain ".", got {name!r}')
        if name == "":
            raise KeyError(f'{kind} name can\'t be empty string ""')

    def register_buffer(self, name: str, tensor, persistent: bool = True) -> None:
        """A tensor that is state but not a parameter (e.g. BatchNorm's running_mean).

        Persistent buffers are part of `state_dict()`; non-persistent ones are not.
        """
        self._check_name("buffer", name)
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"attribute '{name}' already exists")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(
                f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                "(gpugrad Tensor or None required)"
            )
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def register_parameter(self, name: str, param) -> None:
        self._check_name("parameter", name)
        if hasattr(self, name) and name not in self._parameters:
            raise KeyError(f"attribute '{name}' already exists")
        if param is None:
            self._parameters[name] = None
            return
        if not isinstance(param, Parameter):
            raise TypeError(
                f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                "(gpugrad.nn.Parameter or None required)"
            )
        if param.grad_fn is not None:
            raise ValueError(
                f"Cannot assign non-leaf Tensor to parameter '{name}'. Model parameters must "
                "be created explicitly; to express '{name}' as a function of another Tensor, "
                "compute the value in the forward() method."
            )
        self._parameters[name] = param

    def add_module(self, name: str, module) -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._check_name("module", name)
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        self._modules[name] = module

    register_module = add_module

    def get_submodule(self, target: str) -> Module:
        if target == "":
            return self
        mod = self
        for item in target.split("."):
            if item not in mod._modules:
                raise AttributeError(f"{mod._get_name()} has no attribute `{item}`")
            mod = mod._modules[item]
        return mod

    def __setattr__(self, name, value):
        params = self.__dict__.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            self._forget(name, keep="_parameters")  # a replaced parameter keeps its place
            self.register_parameter(name, value)
            return
        if params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                    "(gpugrad.nn.Parameter or None expected)"
                )
            params[name] = None
            return
        modules = self.__dict__.get("_modules")
        if isinstance(value, Module):
            if modules is None:
                raise AttributeError("cannot assign module before Module.__init__() call")
            self._forget(name, keep="_modules")  # a replaced child keeps its place (Sequential)
            modules[name] = value
            return
        if modules is not None and name in modules:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as child module '{name}' "
                    "(gpugrad.nn.Module or None expected)"
                )
            modules[name] = None
            return
        buffers = self.__dict__.get("_buffers")
        if buffers is not None and name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                    "(gpugrad Tensor or None expected)"
                )
            buffers[name] = value
            return
        object.__setattr__(self, name, value)

    def _forget(self, name, keep=None):
        """Drop `name` from the attributes and the registries but `keep`, where a new value
        replaces the old in its place, as in PyTorch: the order of children and parameters
        is the order Sequential runs and state_dict lists."""
        self.__dict__.pop(name, None)
        for store in ("_parameters", "_buffers", "_modules"):
            if store != keep:
                self.__dict__[store].pop(name, None)
        self._non_persistent_buffers_set.discard(name)

    def __getattr__(self, name):
        # Only called when normal lookup fails: look in the three registries.
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for store in ("_parameters", "_buffers", "_modules"):
            if name in self.__dict__.get(store, {}):
                del self.__dict__[store][name]
                self._non_persistent_buffers_set.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        keys = list(super().__dir__()) + list(self._parameters) + list(self._buffers)
        keys += list(self._modules)
        return sorted(set(keys))

    # ------------------------------------------------------------------ traversal

    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is None:
                continue
            sub = prefix + ("." if prefix else "") + name
            yield from module.named_modules(memo, sub, remove_duplicate)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self):
        for _, module in self.named_children():
            yield module

    def _named_members(self, store, prefix, recurse, remove_duplicate):
        seen = set()
        if recurse:
            mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
        else:
            mods = [(prefix, self)]
        for mod_prefix, module in mods:
            for name, value in getattr(module, store).items():
                if value is None:
                    continue
                if remove_duplicate:
                    if id(value) in seen:
                        continue
                    seen.add(id(value))
                yield mod_prefix + ("." if mod_prefix else "") + name, value

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True):
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True):
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn):
        """Call `fn(m)` on every submodule (children first) and on self; returns self."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ modes and grads

    def train(self, mode: bool = True):
        if not isinstance(mode, bool):
            raise ValueError(f"training mode is expected to be boolean, got {mode!r}")
        self.training = mode
        for module in self.children():
            module.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                # A fresh zero array: a .grad array may be shared with another tensor's.
                xp = backend.array_module(p.grad.data)
                p.grad = Tensor(xp.zeros_like(p.grad.data), p.grad.device)

    # ------------------------------------------------------------------ devices and dtypes

    def _apply_move(self, device, dtype):
        for module in self.modules():
            for p in module._parameters.values():
                if p is None:
                    continue
                _move_in_place(p, device, dtype)
                if p.grad is not None:
                    _move_in_place(p.grad, device, dtype)
            for b in module._buffers.values():
                if b is not None:
                    _move_in_place(b, device, dtype)
        return self

    def to(self, *args, **kwargs):
        """Move parameters and buffers in place to a device and/or floating dtype.

        The Parameter objects stay the same (an optimizer built before `.to()` still updates
        them); integer buffers such as `num_batches_tracked` keep their dtype.
        """
        device, dtype = _parse_to(args, kwargs)
        return self._apply_move(device, dtype)

    def cuda(self, device=None):
        if device is None:
            device = "cuda"
        elif isinstance(device, int):
            device = f"cuda:{device}"
        return self.to(device)

    def cpu(self):
        return self.to("cpu")

    def float(self):
        return self.to(backend.float32)

    def double(self):
        return self.to(backend.float64)

    def half(self):
        return self.to(backend.float16)

    def type(self, dst_type):
        return self.to(dst_type)

    # ------------------------------------------------------------------ state dicts

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        for name, p in self._parameters.items():
            if p is not None:
                destination[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers_set:
                destination[prefix + name] = b if keep_vars else b.detach()

    def state_dict(self, *, destination=None, prefix: str = "", keep_vars: bool = False):
        """An ordered dict from dotted names to parameters and persistent buffers.

        The tensors share memory with the module's (detached unless `keep_vars`), as in
        PyTorch; copy them if the module keeps training while you hold the dict.
        """
        if destination is None:
            destination = OrderedDict()
        self._save_to_state_dict(destination, prefix, keep_vars)
        for name, module in self._modules.items():
            if module is not None:
                module.state_dict(destination=destination, prefix=prefix + name + ".",
                                  keep_vars=keep_vars)
        return destination

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Copy parameters and buffers from `state_dict` into this module (in place).

        Returns `(missing_keys, unexpected_keys)`. With `strict`, any of those is an error;
        a shape mismatch is always an error. Values may be Tensors or NumPy arrays; they are
        cast to each target's dtype and moved to its device. With `assign`, the target takes
        the source's dtype instead.
        """
        if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
            raise TypeError(
                f"Expected state_dict to be dict-like, got {type(state_dict).__name__}."
            )
        own = self.state_dict(keep_vars=True)
        optional = self._optional_state_keys()
        missing, errors = [], []
        writes = []  # (target, array): made only once every entry has been read and checked
        for key, target in own.items():
            if key not in state_dict:
                if key not in optional:
                    missing.append(key)
                continue
            value = state_dict[key]
            problem = _not_array_like(value)
            if problem:
                errors.append(f"while copying {key}, expected a Tensor or array of shape "
                              f"{target.shape} from the checkpoint, got {problem}")
                continue
            src_shape = _shape_of(value)
            if src_shape != target.shape:
                errors.append(
                    f"size mismatch for {key}: copying a param with shape {src_shape} from "
                    f"checkpoint, the shape in current model is {target.shape}."
                )
                continue
            try:
                arr = _as_array_for(value, target)
                if arr.dtype.kind not in "biuf":
                    raise TypeError(f"expected numbers, got an array of dtype {arr.dtype}")
                if assign and isinstance(target, Parameter) \
                        and not backend.is_floating(arr.dtype):
                    errors.append(f"cannot assign non-floating dtype {arr.dtype} to {key}")
                    continue
                writes.append((target, arr))
            except (TypeError, ValueError) as e:
                errors.append(f"could not read the value of {key}: {e}")
        unexpected = [k for k in state_dict.keys() if k not in own]
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: "
                              + ", ".join(f'"{k}"' for k in unexpected) + ". ")
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: "
                              + ", ".join(f'"{k}"' for k in missing) + ". ")
        if errors:
            # Nothing was written: a failed load leaves the module as it was (PyTorch may
            # leave it half loaded).
            raise RuntimeError(
                f"Error(s) in loading state_dict for {self._get_name()}:\n\t"
                + "\n\t".join(errors)
            )
        with grad_mode.no_grad():
            for target, arr in writes:
                if assign:
                    target.data = arr.copy()
                else:
                    target.data[...] = arr
        return _IncompatibleKeys(missing, unexpected)

    def _optional_state_keys(self) -> set:
        """Keys load_state_dict may find absent, even when strict: the target keeps its
        value (old PyTorch BatchNorm checkpoints have no num_batches_tracked)."""
        keys = set()
        for prefix, module in self.named_modules():
            for name in module._optional_state():
                keys.add(f"{prefix}.{name}" if prefix else name)
        return keys

    def _optional_state(self) -> tuple:
        """This module's own buffers that a state dict may lack (see _optional_state_keys)."""
        return ()

    # ------------------------------------------------------------------ repr

    def _get_name(self) -> str:
        return type(self).__name__

    def extra_repr(self) -> str:
        """The layer's settings shown inside its repr; subclasses override it."""
        return ""

    def __repr__(self):
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [
            f"({name}): " + _addindent(repr(module), 2)
            for name, module in self._modules.items()
        ]
        lines = extra_lines + child_lines
        main = self._get_name() + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                main += extra_lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"
