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

    def _check_group(self, group: dict) -> None:
        """Subclasses validate a group's options (lr >= 0, ...)."""

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
        state = defaultdict(dict)
        for k, v in state_dict["state"].items():
            key = int(k) if isinstance(k, str) and k.isdigit() else k
            if key in id_map:
                param = id_map[key]
                state[param] = {name: _cast_state(param, name, value)
                                for name, value in v.items()}
            else:
                state[key] = v
        new_groups = []
        for group, saved in zip(groups, saved_groups):
            saved["params"] = group["params"]
            if "param_names" in group and "param_names" not in saved:
                saved["param_names"] = group["param_names"]
            new_groups.append(saved)
        self.state = state
        self.param_groups = new_groups

    def __repr__(self):
        s = type(self).__name__ + " ("
        for i, group in enumerate(self.param_groups):
            s += f"\nParameter Group {i}"
            for key in sorted(group):
                if key != "params":
                    s += f"\n    {key}: {group[key]}"
        return s + "\n)"


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
