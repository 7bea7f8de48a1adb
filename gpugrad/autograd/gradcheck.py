"""Numerical gradient checks: central differences in float64 against autograd.

`gradcheck` compares the analytic Jacobian-vector products with central differences for every
input element; `gradgradcheck` does the same for the gradient function itself (second order).
On failure they say which input, which index, and both values.
"""

from __future__ import annotations

import numpy as np

from gpugrad import backend
from gpugrad.autograd.engine import grad
from gpugrad.tensor import Tensor


class GradcheckError(AssertionError):
    """Raised by gradcheck/gradgradcheck when a gradient is wrong (and raise_exception=True)."""


def _outputs(fn, inputs):
    out = fn(*inputs)
    return (out,) if isinstance(out, Tensor) else tuple(out)


def numerical_jacobian_row(fn, inputs, out_weights, i, eps):
    """d<out, w>/d inputs[i], by central differences in float64 (one entry at a time)."""
    x = inputs[i]
    if not x.data.flags.c_contiguous:
        x.data = backend.array_module(x.data).ascontiguousarray(x.data)
    flat = x.data.reshape(-1)  # a view: perturbations write through to x
    result = np.zeros(x.numel(), dtype=np.float64)
    for k in range(flat.size):
        orig = flat[k].item()
        # Recording stays on: gradgradcheck's fn computes a gradient inside.
        flat[k] = orig + eps
        plus = _weighted_sum(_outputs(fn, inputs), out_weights)
        flat[k] = orig - eps
        minus = _weighted_sum(_outputs(fn, inputs), out_weights)
        flat[k] = orig
        result[k] = (plus - minus) / (2 * eps)
    return result.reshape(x.shape)


def _weighted_sum(outputs, weights):
    total = 0.0
    for out, w in zip(outputs, weights):
        if out.dtype.kind == "f":
            total += float(backend.to_numpy(out.data).astype(np.float64).ravel()
                           @ w.ravel())
    return total


def _check_inputs(inputs, op):
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.requires_grad and x.dtype != np.float64:
            raise ValueError(
                f"{op}: input {i} requiring grad has dtype {x.dtype}; use float64 inputs"
            )


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, seed=0):
    """True when autograd's gradients of `fn` at `inputs` match central differences."""
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    _check_inputs(inputs, "gradcheck")
    diff_idx = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    outputs = _outputs(fn, inputs)
    rng = np.random.default_rng(seed)
    # A random weighting of the outputs: one backward gives <w, J> for every input at once.
    weights = [rng.standard_normal(o.shape) for o in outputs]
    diff_out = [(o, w) for o, w in zip(outputs, weights) if o.requires_grad]
    if diff_out:
        analytic = grad(
            [o for o, _ in diff_out],
            [inputs[i] for i in diff_idx],
            grad_outputs=[Tensor(backend.to_device(w.astype(o.dtype), o.device), o.device)
                          for o, w in diff_out],
            allow_unused=True,
        )
    else:
        analytic = [None] * len(diff_idx)
    for i, g in zip(diff_idx, analytic):
        num = numerical_jacobian_row(fn, inputs, weights, i, eps)
        ana = np.zeros(inputs[i].shape) if g is None else backend.to_numpy(g.data)
        bad = ~np.isclose(ana, num, rtol=rtol, atol=atol, equal_nan=True)
        if bad.any():
            k = tuple(int(v) for v in np.argwhere(bad)[0])
            msg = (
                f"gradcheck: gradient of input {i} (shape {inputs[i].shape}) is wrong at index "
                f"{k}: analytical {ana[k]!r} vs numerical {num[k]!r} "
                f"({int(bad.sum())} of {bad.size} entries differ; atol={atol}, rtol={rtol})"
            )
            if raise_exception:
                raise GradcheckError(msg)
            return False
    return True


def gradgradcheck(fn, inputs, grad_outputs=None, eps=1e-6, atol=1e-5, rtol=1e-3,
                  raise_exception=True, seed=1):
    """gradcheck of the function (inputs, v) -> grad(<fn(inputs), v>, inputs)."""
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    _check_inputs(inputs, "gradgradcheck")
    diff_idx = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    outputs = _outputs(fn, inputs)
    rng = np.random.default_rng(seed)
    if grad_outputs is None:
        grad_outputs = [
            Tensor(backend.to_device(rng.standard_normal(o.shape), o.device), o.device,
                   requires_grad=True)
            for o in outputs if o.requires_grad
        ]
    n_in = len(inputs)

    def first_grads(*args):
        xs, vs = args[:n_in], args[n_in:]
        outs = [o for o in _outputs(fn, xs) if o.requires_grad]
        gs = grad(outs, [xs[i] for i in diff_idx], grad_outputs=list(vs), create_graph=True,
                  allow_unused=True)
        return tuple(g for g in gs if g is not None)

    return gradcheck(first_grads, tuple(inputs) + tuple(grad_outputs), eps=eps, atol=atol,
                     rtol=rtol, raise_exception=raise_exception, seed=seed)
