"""CUDA kernels for ReLU forward and backward; see kernels/activation.py for the semantics.

Imported on the first CUDA call only (it imports numba.cuda). Both run on flat views.
"""

from __future__ import annotations

from numba import cuda, types

from gpugrad.kernels._launch import launch_elementwise


@cuda.jit
def relu_forward_kernel(x, y):
    zero = x.dtype.type(0)
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, x.shape[0], step):
        v = x[i]
        y[i] = zero if v <= zero else v


@cuda.jit
def relu_backward_kernel(y, gy, gx):
    zero = gy.dtype.type(0)
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, y.shape[0], step):
        gx[i] = zero if y[i] <= zero else gy[i]


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
