"""CUDA kernels for im2col / col2im (NCHW); see kernels/conv.py for layouts and dispatch.

Imported on the first CUDA call only (it imports numba.cuda). Both kernels give one thread per
output element and walk the output with a grid-stride loop, so any grid size covers any array.
"""

from __future__ import annotations

from numba import cuda, types

from gpugrad.kernels._launch import launch_elementwise


@cuda.jit(device=True, inline=True)
def _column_index(i, n_img, n_ch, kh, kw, out_h, out_w, channel_major):
    """(n, c, ky, kx, oy, ox) of flat column index i in either layout (see kernels/conv.py)."""
    ox = i % out_w
    rest = i // out_w
    oy = rest % out_h
    rest //= out_h
    if channel_major:  # (C, kh, kw, N, out_h, out_w)
        n = rest % n_img
        rest //= n_img
        kx = rest % kw
        rest //= kw
        ky = rest % kh
        c = rest // kh
    else:  # (N, C, kh, kw, out_h, out_w)
        kx = rest % kw
        rest //= kw
        ky = rest % kh
        rest //= kh
        c = rest % n_ch
        n = rest // n_ch
    return n, c, ky, kx, oy, ox


@cuda.jit
def im2col_kernel(x, kh, kw, sy, sx, ph, pw, dy, dx, pad_value, channel_major, cols):
    """One thread per column entry: copy the input tap it reads, or pad_value off the image.

    Consecutive threads write consecutive column entries (coalesced) and read along an image
    row."""
    n_img, n_ch, h, w = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
    out_h, out_w = cols.shape[4], cols.shape[5]
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, cols.size, step):
        n, c, ky, kx, oy, ox = _column_index(i, n_img, n_ch, kh, kw, out_h, out_w,
                                             channel_major)
        iy = oy * sy - ph + ky * dy
        ix = ox * sx - pw + kx * dx
        value = pad_value
        if 0 <= iy < h and 0 <= ix < w:
            value = x[n, c, iy, ix]
        # (No reshape to a flat view: Numba's reshape compares a signed and an unsigned size,
        # which it does in float64, and float32 kernels must not touch f64.)
        if channel_major:
            cols[c, ky, kx, n, oy, ox] = value
        else:
            cols[n, c, ky, kx, oy, ox] = value


@cuda.jit
def col2im_kernel(cols, kh, kw, sy, sx, ph, pw, dy, dx, channel_major, x):
    """One thread per image pixel, summing the columns that read it.

    A gather rather than a scatter of columns into the image: each pixel is written by exactly
    one thread, so no atomics are needed and the sum order (ky, then kx) is fixed, which makes
    the result deterministic and equal to the CPU twin's.
    """
    n_ch, h, w = x.shape[1], x.shape[2], x.shape[3]
    out_h, out_w = cols.shape[4], cols.shape[5]
    zero = x.dtype.type(0)
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, x.size, step):
        ix = i % w
        rest = i // w
        iy = rest % h
        rest //= h
        c = rest % n_ch
        n = rest // n_ch
        acc = zero
        for ky in range(kh):
            # The pixel is tap ky of output row oy when oy * sy = iy + ph - ky * dy.
            ty = iy + ph - ky * dy
            if ty < 0 or ty % sy != 0 or ty // sy >= out_h:
                continue
            oy = ty // sy
            for kx in range(kw):
                tx = ix + pw - kx * dx
                if tx < 0 or tx % sx != 0 or tx // sx >= out_w:
                    continue
                ox = tx // sx
                if channel_major:
                    acc += cols[c, ky, kx, n, oy, ox]
                else:
                    acc += cols[n, c, ky, kx, oy, ox]
        x[n, c, iy, ix] = acc


def im2col(x, kh, kw, sy, sx, ph, pw, dy, dx, pad_value, channel_major, cols, device) -> None:
    launch_elementwise(
        im2col_kernel, cols.size, device, x, kh, kw, sy, sx, ph, pw, dy, dx, pad_value,
        channel_major, cols,
    )


def col2im(cols, kh, kw, sy, sx, ph, pw, dy, dx, channel_major, x, device) -> None:
    launch_elementwise(
        col2im_kernel, x.size, device, cols, kh, kw, sy, sx, ph, pw, dy, dx, channel_major, x
    )


def signatures(dtype):
    """(name, kernel, argument types) for each kernel as the dispatchers launch it."""
    f = types.float64 if dtype == "float64" else types.float32
    i = types.int64
    b = types.boolean
    x4 = types.Array(f, 4, "C")
    cols6 = types.Array(f, 6, "C")
    return [
        ("im2col_kernel", im2col_kernel, (x4, i, i, i, i, i, i, i, i, f, b, cols6)),
        ("col2im_kernel", col2im_kernel, (cols6, i, i, i, i, i, i, i, i, b, x4)),
    ]
