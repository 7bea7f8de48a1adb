"""`Optimizer`: parameter groups, per-parameter state, and PyTorch's state_dict format.

Subclasses implement `step()` with array ops on `p.data` / `p.grad.data` (NumPy or CuPy,
whichever holds the parameter), updating in place so the Parameter objects and their arrays
stay the same. State tensors are gpugrad Tensors, so `state_dict()` can be saved with
`gpugrad.save` and has the layout of `torch.optim.Optimizer.state_dict()`:

    {"state": {0: {"momentum_buffer": Tensor}, ...},
     "param_groups": [{"lr": 0.1, ..., "params": [0, 1, ...]}, ...]}
"""

from __future__ import annotations

import copy
import math
import numbers
from collections import defaultdict
from itertools import chain

import numpy as np

from gpugrad import backend
from gpugrad import grad_mode
from gpugrad.tensor import Tensor


class _RequiredParameter:
    """The default of an option every group must set (e.g. SGD's lr in old PyTorch)."""

    def __repr__(self):
        return "<required parameter>"


required = _RequiredParameter()


class Optimizer:
    def __init__(self, params, defaults: dict):
        self.defaults = defaults
        self.state: defaultdict = defaultdict(dict)
        self.param_groups: list[dict] = []
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or "
                f"dicts, but got {type(params).__name__}"
            )
        if isinstance(params, (set, frozenset)):
            # Stricter than PyTorch, which accepts a set here: a set's order changes between
            # runs, and state_dict() numbers the parameters by that order.
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the "
                "ordering of tensors in sets will change between runs. Please use a list instead."
            )
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    # ------------------------------------------------------------------ groups

    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters with its own options (defaults fill the rest)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        param_group = dict(param_group)
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the "
                "ordering of tensors in sets will change between runs. Please use a list instead."
            )
        params = list(params)
        names = [p[0] for p in params if isinstance(p, tuple)]
        tensors = [p[1] if isinstance(p, tuple) else p for p in params]
        if names:
            if len(names) != len(tensors):
                raise ValueError("all optimizer params should be with/without names. Some "
                                 "param names are missing")
            param_group["param_names"] = names
        param_group["params"] = tensors
        for p in tensors:
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"optimizer can only optimize Tensors, but one of the params is "
                    f"{type(p).__name__}"
                )
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
            if not backend.is_floating(p.dtype):
                raise TypeError(f"optimizer can only optimize floating-point Tensors, got "
                                f"{p.dtype}")
        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(
                    f"parameter group didn't specify a value of required optimization "
                    f"parameter {name}"
                )
            param_group.setdefault(name, default)
        if len({id(p) for p in tensors}) != len(tensors):
            raise ValueError("optimizer contains a parameter group with duplicate parameters")
        existing = {id(p) for group in self.param_groups for p in group["params"]}
        if existing & {id(p) for p in tensors}:
            raise ValueError("some parameters appear in more than one parameter group")
        self._check_group(param_group)
        self.param_groups.append(param_group)

    # The options and per-parameter state a subclass owns; load_state_dict refuses a state
    # dict without the options, with state it does not own, or with state of the wrong shape.
    _required_options: tuple = ("lr",)
    _state_keys: frozenset = frozenset()
    _scalar_state: frozenset = frozenset()

    def _check_group(self, group: dict) -> None:
        """Subclasses validate a group's options (lr >= 0, ...); run for the defaults, for
        every group added and for every group loaded."""
        self._check_number(group, "lr", "learning rate")

    def _check_number(self, group: dict, key: str, what: str, low: float = 0.0,
                      high: float | None = None) -> float:
        """group[key] as a float, finite and in [low, high) (high=None: no upper bound)."""
        return check_option(type(self).__name__, what, group[key], low, high)

    # ------------------------------------------------------------------ stepping

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    # A fresh zero array: a .grad array may be shared with another tensor's.
                    xp = backend.array_module(p.grad.data)
                    p.grad = Tensor(xp.zeros_like(p.grad.data), p.grad.device)

    def step(self, closure=None):
        """Re-evaluate the loss with `closure` (if given), then update every parameter."""
        loss = None
        if closure is not None:
            with grad_mode.enable_grad():
                loss = closure()
        with grad_mode.no_grad():
            for group in self.param_groups:
                self._step_group(group)
        return loss

    def _step_group(self, group: dict) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ state dicts

    def state_dict(self) -> dict:
        """{'state': {index: {...}}, 'param_groups': [{..., 'params': [index, ...]}]}.

        Parameters are numbered in group order; the state tensors are the optimizer's own
        (not copies), as in PyTorch.
        """
        index_of: dict[int, int] = {}
        packed_groups = []
        start = 0
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for i, p in enumerate(group["params"], start):
                index_of.setdefault(id(p), i)
            packed["params"] = [index_of[id(p)] for p in group["params"]]
            start += len(packed["params"])
            packed_groups.append(packed)
        packed_state = {
            (index_of[id(k)] if isinstance(k, Tensor) else k): v for k, v in self.state.items()
        }
        return {"state": packed_state, "param_groups": packed_groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Load `state_dict` (from `state_dict()`); state tensors are copied onto each
        parameter's device (floating ones in its dtype, except the step count)."""
        if "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError("optimizer state_dict must have 'state' and 'param_groups' keys, "
                             f"got {sorted(state_dict)}")
        groups = self.param_groups
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError(
                f"loaded state dict has a different number of parameter groups "
                f"({len(saved_groups)} vs {len(groups)} in the optimizer)"
            )
        for g, s in zip(groups, saved_groups):
            if len(g["params"]) != len(s["params"]):
                raise ValueError(
                    "loaded state dict contains a parameter group that doesn't match the size "
                    f"of optimizer's group ({len(s['params'])} vs {len(g['params'])} params)"
                )
        id_map = dict(zip(chain.from_iterable(g["params"] for g in saved_groups),
                          chain.from_iterable(g["params"] for g in groups)))
        new_groups = [self._loaded_group(i, group, saved)
                      for i, (group, saved) in enumerate(zip(groups, saved_groups))]
        state = defaultdict(dict)
        for k, v in state_dict["state"].items():
            key = int(k) if isinstance(k, str) and k.isdigit() else k
            if key not in id_map:
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: state for parameter {key!r}, "
                    f"which no parameter group of the state dict lists"
                )
            param = id_map[key]
            self._check_state(key, param, v)
            state[param] = {name: _cast_state(param, name, value) for name, value in v.items()}
        self.state = state
        self.param_groups = new_groups

    def _loaded_group(self, index: int, group: dict, saved: dict) -> dict:
        """A saved group checked as the constructor checks one, on this group's params.

        Options this optimizer has but the state dict lacks are an error when they define
        the algorithm (e.g. SGD's momentum in an Adam state dict); flags added in later
        versions (foreach, maximize, ...) take the defaults, as in PyTorch.
        """
        name = type(self).__name__
        missing = [k for k in self._required_options if k not in saved]
        if missing:
            raise ValueError(
                f"{name}.load_state_dict: parameter group {index} has no {', '.join(missing)} "
                f"option; it is not a {name} state dict (its options: "
                f"{', '.join(sorted(k for k in saved if k != 'params'))})"
            )
        for key, default in self.defaults.items():
            saved.setdefault(key, default)
        saved["params"] = group["params"]
        if "param_names" in group and "param_names" not in saved:
            saved["param_names"] = group["param_names"]
        self._check_group(saved)
        return saved

    def _check_state(self, index, param: Tensor, entry) -> None:
        """Refuse per-parameter state this optimizer does not keep or of the wrong shape."""
        name = type(self).__name__
        if not isinstance(entry, dict):
            raise ValueError(f"{name}.load_state_dict: state of parameter {index} must be a "
                             f"dict, got {type(entry).__name__}")
        foreign = sorted(set(entry) - self._state_keys)
        if foreign:
            raise ValueError(
                f"{name}.load_state_dict: state of parameter {index} has {', '.join(foreign)}, "
                f"which {name} does not keep (it keeps {', '.join(sorted(self._state_keys))})"
            )
        for key, value in entry.items():
            if value is None:
                continue
            shape = tuple(getattr(value, "shape", np.shape(value)))
            expected = () if key in self._scalar_state else tuple(param.shape)
            if key in self._scalar_state and int(np.prod(shape)) == 1:
                continue
            if shape != expected:
                raise ValueError(
                    f"{name}.load_state_dict: state {key!r} of parameter {index} has shape "
                    f"{shape}, expected {expected} (the parameter's shape is "
                    f"{tuple(param.shape)})"
                )

    def __repr__(self):
        s = type(self).__name__ + " ("
        for i, group in enumerate(self.param_groups):
            s += f"\nParameter Group {i}"
            for key in sorted(group):
                if key != "params":
                    s += f"\n    {key}: {group[key]}"
        return s + "\n)"


def check_option(owner: str, what: str, value, low: float = 0.0,
                 high: float | None = None) -> float:
    """`value` as a float that is finite and in [low, high); a clear error naming `owner`."""
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {what} must be a real number, got "
                        f"{type(value).__name__} {value!r}")
    value = float(value)
    bounds = f"[{low}, {high})" if high is not None else f">= {low}"
    if not math.isfinite(value) or value < low or (high is not None and value >= high):
        raise ValueError(f"{owner}: Invalid {what}: {value} (expected a finite number "
                         f"{'in ' if high is not None else ''}{bounds})")
    return value


def _cast_state(param: Tensor, name: str, value):
    """A copy of one state entry, on the parameter's device (and dtype, for float buffers)."""
    if isinstance(value, Tensor):
        arr = value.data
    elif isinstance(value, np.ndarray) or (hasattr(value, "__array__")
                                           and not isinstance(value, (int, float))):
        arr = np.asarray(value)
    else:
        return copy.deepcopy(value)
    if name == "step":
        # The step count stays a CPU float32 scalar (as PyTorch keeps it off the GPU).
        return Tensor(np.array(backend.to_numpy(arr), dtype=np.float32), backend.CPU)
    with backend.device_context(param.device):
        arr = backend.to_device(arr, param.device)
        if backend.is_floating(arr.dtype) and arr.dtype != param.dtype:
            arr = arr.astype(param.dtype)
        else:
            arr = arr.copy()
    return Tensor(arr, param.device)
