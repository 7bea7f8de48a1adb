"""CUDA kernels for 2-D max-pooling (NCHW); see kernels/pool.py for the semantics.

Imported on the first CUDA call only (it imports numba.cuda). The forward gives one thread per
output, the backward one thread per input pixel; both walk their array with a grid-stride loop,
so any grid size covers any shape.
"""

from __future__ import annotations

from numba import cuda, types

from gpugrad.kernels._launch import launch_elementwise


@cuda.jit
def max_pool2d_forward_kernel(x, kh, kw, sy, sx, ph, pw, dy, dx, y, argmax):
    """One thread per output: scan the window row-major; a greater tap or a NaN takes over."""
    n_ch, h, w = x.shape[1], x.shape[2], x.shape[3]
    out_h, out_w = y.shape[2], y.shape[3]
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, y.size, step):
        ox = i % out_w
        rest = i // out_w
        oy = rest % out_h
        rest //= out_h
        c = rest % n_ch
        n = rest // n_ch
        # The in-image taps of the window, PyTorch's hstart/hend: a start in the padding steps
        # forward by ceil(-start / dilation) dilations, in one step (PyTorch loops). (Inline: a
        # device function would need a GPU to compile.)
        y0 = oy * sy - ph
        y1 = min(y0 + (kh - 1) * dy + 1, h)
        if y0 < 0:
            y0 += (dy - 1 - y0) // dy * dy
        x0 = ox * sx - pw
        x1 = min(x0 + (kw - 1) * dx + 1, w)
        if x0 < 0:
            x0 += (dx - 1 - x0) // dx * dx
        # Seeding with the first in-image tap equals starting from -inf (the tap beats it or
        # equals it) and keeps float64 literals out of the float32 kernel.
        best = x[n, c, y0, x0]
        best_at = y0 * w + x0
        for iy in range(y0, y1, dy):
            for ix in range(x0, x1, dx):
                v = x[n, c, iy, ix]
                if v > best or v != v:
                    best = v
                    best_at = iy * w + ix
        y[n, c, oy, ox] = best
        argmax[n, c, oy, ox] = best_at


@cuda.jit
def max_pool2d_backward_kernel(gy, argmax, kh, kw, sy, sx, ph, pw, dy, dx, gx):
    """One thread per input pixel, summing gy over the windows whose argmax it is.

    A gather rather than a scatter of gy into gx: each pixel is written by one thread, so no
    atomics are needed. The pixel is tap ky of output row oy when oy * sy + ky * dy = iy + ph
    with 0 <= ky < kh: the rows oy in [ceil((iy + ph - (kh - 1) * dy) / sy), (iy + ph) // sy]
    whose offset iy + ph - oy * sy is a multiple of dy (columns alike). Looping over those rows
    rather than over the kh taps keeps the work per pixel within the windows that hold it,
    whatever the kernel size, and visits them in output order (oy, then ox, ascending), the order
    the CPU twin adds in, so the sums match it bit for bit. An argmax that is no tap of its
    window matches no pixel and is skipped; every read stays inside gy and argmax.
    """
    n_ch, h, w = gx.shape[1], gx.shape[2], gx.shape[3]
    out_h, out_w = gy.shape[2], gy.shape[3]
    zero = gx.dtype.type(0)
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, gx.size, step):
        ix = i % w
        rest = i // w
        iy = rest % h
        rest //= h
        c = rest % n_ch
        n = rest // n_ch
        here = iy * w + ix
        acc = zero
        # Every division below has a non-negative numerator (no floor-division fix-ups).
        ty = iy + ph
        lo = ty - (kh - 1) * dy
        oy0 = (lo + sy - 1) // sy if lo > 0 else 0
        oy1 = min(ty // sy + 1, out_h)
        tx = ix + pw
        lo = tx - (kw - 1) * dx
        ox0 = (lo + sx - 1) // sx if lo > 0 else 0
        ox1 = min(tx // sx + 1, out_w)
        for oy in range(oy0, oy1):
            if (ty - oy * sy) % dy != 0:
                continue
            for ox in range(ox0, ox1):
                if (tx - ox * sx) % dx != 0:
                    continue
                if argmax[n, c, oy, ox] == here:
                    acc += gy[n, c, oy, ox]
        gx[n, c, iy, ix] = acc


def max_pool2d_forward(x, kh, kw, sy, sx, ph, pw, dy, dx, y, argmax, device) -> None:
    launch_elementwise(
        max_pool2d_forward_kernel, y.size, device, x, kh, kw, sy, sx, ph, pw, dy, dx, y, argmax
    )


def max_pool2d_backward(gy, argmax, kh, kw, sy, sx, ph, pw, dy, dx, gx, device) -> None:
    launch_elementwise(
        max_pool2d_backward_kernel, gx.size, device, gy, argmax, kh, kw, sy, sx, ph, pw, dy, dx,
        gx,
    )


def signatures(dtype):
    """(name, kernel, argument types) for each kernel as the dispatchers launch it."""
    f = types.float64 if dtype == "float64" else types.float32
    i = types.int64
    v4 = types.Array(f, 4, "C")
    idx4 = types.Array(types.int64, 4, "C")
    return [
        ("max_pool2d_forward_kernel", max_pool2d_forward_kernel,
         (v4, i, i, i, i, i, i, i, i, v4, idx4)),
        ("max_pool2d_backward_kernel", max_pool2d_backward_kernel,
         (v4, idx4, i, i, i, i, i, i, i, i, v4)),
    ]
