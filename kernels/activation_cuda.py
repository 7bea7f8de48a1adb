"""CUDA kernels for ReLU forward and backward; see kernels/activation.py for the semantics.

Imported on the first CUDA call only (it imports numba.cuda). Both run on flat views.
"""

from __future__ import annotations

from numba import cuda, types

from gpugrad.kernels._launch import launch_elementwise


# Each thread handles UNROLL elements per trip, spaced a grid apart (so every load is coalesced),
# loading all of them before it stores any: UNROLL loads in flight per thread instead of one.
# One in flight left an H200 latency-bound at ~64% of its copy bandwidth on 1 GiB arrays.
UNROLL = 4


@cuda.jit
def relu_forward_kernel(x, y):
    zero = x.dtype.type(0)
    n = x.shape[0]
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i + (UNROLL - 1) * step < n:
        a = x[i]
        b = x[i + step]
        c = x[i + 2 * step]
        d = x[i + 3 * step]
        y[i] = zero if a <= zero else a
        y[i + step] = zero if b <= zero else b
        y[i + 2 * step] = zero if c <= zero else c
        y[i + 3 * step] = zero if d <= zero else d
        i += UNROLL * step
    while i < n:
        v = x[i]
        y[i] = zero if v <= zero else v
        i += step


@cuda.jit
def relu_backward_kernel(y, gy, gx):
    zero = gy.dtype.type(0)
    n = y.shape[0]
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i + (UNROLL - 1) * step < n:
        ya = y[i]
        yb = y[i + step]
        yc = y[i + 2 * step]
        yd = y[i + 3 * step]
        ga = gy[i]
        gb = gy[i + step]
        gc = gy[i + 2 * step]
        gd = gy[i + 3 * step]
        gx[i] = zero if ya <= zero else ga
        gx[i + step] = zero if yb <= zero else gb
        gx[i + 2 * step] = zero if yc <= zero else gc
        gx[i + 3 * step] = zero if yd <= zero else gd
        i += UNROLL * step
    while i < n:
        gx[i] = zero if y[i] <= zero else gy[i]
        i += step


def relu_forward(x, y, device) -> None:
    launch_elementwise(relu_forward_kernel, x.shape[0], device, x, y)


def relu_backward(y, gy, gx, device) -> None:
    launch_elementwise(relu_backward_kernel, y.shape[0], device, y, gy, gx)


def signatures(dtype):
    """(name, kernel, argument types) for each kernel as the dispatchers launch it."""
    f = types.float64 if dtype == "float64" else types.float32
    v = types.Array(f, 1, "C")
    return [
        ("relu_forward_kernel", relu_forward_kernel, (v, v)),
        ("relu_backward_kernel", relu_backward_kernel, (v, v, v)),
    ]
