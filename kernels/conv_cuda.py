"""CUDA kernels for im2col / col2im (NCHW); see kernels/conv.py for layouts and dispatch.

Imported on the first CUDA call only (it imports numba.cuda). im2col gives one thread per
(image, channel, output pixel), col2im one per image pixel; both walk their items with a
grid-stride loop, so any grid size covers any array.
"""

from __future__ import annotations

from numba import cuda, types

from gpugrad.kernels._launch import launch_elementwise


@cuda.jit
def im2col_kernel(x, kh, kw, sy, sx, ph, pw, dy, dx, pad_value, channel_major, cols):
    """One thread per (image, channel, output pixel), writing that pixel's kh * kw taps.

    The index arithmetic (four integer divisions, which a GPU emulates in software) is paid once
    per kh * kw column entries instead of once per entry. Consecutive threads take consecutive
    output pixels, so every tap's writes are coalesced in either layout and its reads run along
    an image row."""
    n_img, n_ch, h, w = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
    out_h, out_w = cols.shape[4], cols.shape[5]
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, n_img * n_ch * out_h * out_w, step):
        ox = i % out_w
        rest = i // out_w
        oy = rest % out_h
        rest //= out_h
        c = rest % n_ch
        n = rest // n_ch
        y0 = oy * sy - ph
        x0 = ox * sx - pw
        for ky in range(kh):
            iy = y0 + ky * dy
            row_inside = 0 <= iy < h
            for kx in range(kw):
                ix = x0 + kx * dx
                value = pad_value
                if row_inside and 0 <= ix < w:
                    value = x[n, c, iy, ix]
                # (No reshape to a flat view: Numba's reshape compares a signed and an unsigned
                # size, which it does in float64, and float32 kernels must not touch f64.)
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
            # The pixel is tap ky of output row oy when oy * sy = iy + ph - ky * dy. Stride 1
            # (the common case, and the same for every thread) skips the integer divisions.
            ty = iy + ph - ky * dy
            if ty < 0:
                continue
            oy = ty
            if sy != 1:
                if ty % sy != 0:
                    continue
                oy = ty // sy
            if oy >= out_h:
                continue
            for kx in range(kw):
                tx = ix + pw - kx * dx
                if tx < 0:
                    continue
                ox = tx
                if sx != 1:
                    if tx % sx != 0:
                        continue
                    ox = tx // sx
                if ox >= out_w:
                    continue
                if channel_major:
                    acc += cols[c, ky, kx, n, oy, ox]
                else:
                    acc += cols[n, c, ky, kx, oy, ox]
        x[n, c, iy, ix] = acc


def im2col(x, kh, kw, sy, sx, ph, pw, dy, dx, pad_value, channel_major, cols, device) -> None:
    launch_elementwise(
        im2col_kernel, x.shape[0] * x.shape[1] * cols.shape[4] * cols.shape[5], device,
        x, kh, kw, sy, sx, ph, pw, dy, dx, pad_value,
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
