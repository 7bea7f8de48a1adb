"""CUDA kernels for im2col / col2im (NCHW); see kernels/conv.py for layouts and dispatch.

Imported on the first CUDA call only (it imports numba.cuda). im2col gives one thread per
(image, channel, output pixel) and works on flat views, col2im one thread per image pixel; both
walk their items with a grid-stride loop, so any grid size covers any array.

im2col comes in two builds. Kernels up to MAX_SIZED_TAPS taps (7x7) get a kernel compiled for
their size (``sized_im2col_kernel``, built on first use): its tap loops unroll, every tap is
loaded into registers before any is stored, and its divisions are multiplications. Measured on
an H200 (N=128, C=64, 56x56, 3x3), that took im2col from 33% to 76% of the bandwidth of a plain
fill of the columns: the generic kernel was bound by its integer instructions, not by memory.
Larger kernels use the generic ``im2col_kernel``.

col2im likewise: ``sized_col2im_kernel`` is compiled per kernel size up to MAX_SIZED_TAPS, with
every tap loaded before any is summed, and no integer division (multiply-highs, and the output
row and column of each kernel row and column worked out once per pixel). On the H200 it read
73% of the copy bandwidth where the generic gather ``col2im_kernel`` read 19% (N=128, C=64,
56x56, 3x3); the generic kernel stays for larger kernels. Both add a pixel's taps in the same
(ky, kx) order from +0, so they agree to the bit with each other and with the CPU twin.
"""

from __future__ import annotations

import numpy as np
from numba import cuda, int64, types, uint64
from numba.cuda import libdevice
from numba.np import numpy_support

from gpugrad.kernels._launch import launch_elementwise

# The most taps (kh * kw) that get a kernel compiled for their size: each tap holds a register.
MAX_SIZED_TAPS = 49


@cuda.jit
def im2col_kernel(x, n_img, n_ch, h, w, kh, kw, sy, sx, ph, pw, dy, dx, pad_value, out_h, out_w,
                  channel_major, cols):
    """One thread per (image, channel, output pixel), writing that pixel's kh * kw taps.

    `x` and `cols` are flat views. The index arithmetic (integer divisions, which a GPU
    emulates in software) is paid once per kh * kw column entries; from tap to tap the column
    offset moves by a fixed stride and the image offset by the dilation. Along a kernel row the
    thread loads three taps before it stores any (three loads in flight, not one). Consecutive
    threads take consecutive output pixels, so every store is coalesced in either layout."""
    plane = out_h * out_w
    # Column entries between tap (ky, kx) and the next tap of the same pixel, in either layout:
    # (C, kh, kw, N, out_h, out_w) or (N, C, kh, kw, out_h, out_w).
    tap_stride = n_img * plane if channel_major else plane
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, n_img * n_ch * plane, step):
        ox = i % out_w
        rest = i // out_w
        oy = rest % out_h
        image = rest // out_h  # n * n_ch + c
        if channel_major:
            c = image % n_ch
            n = image // n_ch
            out = c * kh * kw * tap_stride + n * plane + oy * out_w + ox
        else:
            out = image * kh * kw * plane + oy * out_w + ox
        src = image * h * w
        y0 = oy * sy - ph
        x0 = ox * sx - pw
        for ky in range(kh):
            iy = y0 + ky * dy
            row_inside = 0 <= iy < h
            row = src + iy * w
            kx = 0
            while kx + 2 < kw:
                ix = x0 + kx * dx
                a = pad_value
                b = pad_value
                c3 = pad_value
                if row_inside:
                    if 0 <= ix < w:
                        a = x[row + ix]
                    if 0 <= ix + dx < w:
                        b = x[row + ix + dx]
                    if 0 <= ix + 2 * dx < w:
                        c3 = x[row + ix + 2 * dx]
                cols[out] = a
                cols[out + tap_stride] = b
                cols[out + 2 * tap_stride] = c3
                out += 3 * tap_stride
                kx += 3
            while kx < kw:
                ix = x0 + kx * dx
                v = pad_value
                if row_inside and 0 <= ix < w:
                    v = x[row + ix]
                cols[out] = v
                out += tap_stride
                kx += 1


def division_magic(d: int):
    """ceil(2**64 / d) as a uint64 for divmod_by (0 for d == 1, which needs none)."""
    return np.uint64(0 if d == 1 else (2**64 + d - 1) // d)


@cuda.jit(device=True, inline=True)
def divmod_by(i, d, magic):
    """(i // d, i % d) for 0 <= i and i * d < 2**64, given magic = division_magic(d): the high
    half of a 64-bit product instead of a 64-bit integer division, which a GPU emulates in
    dozens of instructions. Exact: with magic = (2**64 + e) / d, 0 <= e < d, and i = q * d + r,
    i * magic / 2**64 = q + (r + i * e / 2**64) / d, and r + i * e / 2**64 < r + 1 <= d."""
    if d == 1:
        return i, i - i
    q = int64(libdevice.umul64hi(uint64(i), magic))
    r = i - q * d
    return q, r


def _build_sized_im2col(kh, kw, dtype):
    taps = kh * kw

    @cuda.jit
    def sized_im2col_kernel(x, n_img, n_ch, h, w, sy, sx, ph, pw, dy, dx, pad_value, out_h,
                            out_w, magic_h, magic_w, magic_ch, channel_major, cols):
        """im2col for a kh x kw kernel (compile-time constants): one thread per (image,
        channel, output pixel) loads its taps into registers, then stores them. Indices are
        unsigned, so Numba adds no negative-index wraparound to any of them."""
        plane = out_h * out_w
        # Column entries between one tap of a pixel and the next, in either layout:
        # (C, kh, kw, N, out_h, out_w) or (N, C, kh, kw, out_h, out_w).
        tap_stride = n_img * plane if channel_major else plane
        for i in range(cuda.grid(1), n_img * n_ch * plane, cuda.gridsize(1)):
            rest, ox = divmod_by(i, out_w, magic_w)
            image, oy = divmod_by(rest, out_h, magic_h)  # image = n * n_ch + c
            if channel_major:
                n, c = divmod_by(image, n_ch, magic_ch)
                out = c * taps * tap_stride + n * plane + oy * out_w + ox
            else:
                out = image * taps * plane + oy * out_w + ox
            src = image * h * w
            y0 = oy * sy - ph
            x0 = ox * sx - pw
            # Loads first, stores after: Numba cannot know x and cols never overlap, so a
            # store between two loads would keep the second from being issued early.
            vals = cuda.local.array(taps, dtype)
            for ky in range(kh):
                iy = y0 + ky * dy
                row_inside = 0 <= iy < h
                for kx in range(kw):
                    ix = x0 + kx * dx
                    v = pad_value
                    if row_inside and 0 <= ix < w:
                        v = x[uint64(src + iy * w + ix)]
                    vals[ky * kw + kx] = v
            for k in range(taps):
                cols[uint64(out + k * tap_stride)] = vals[k]

    return sized_im2col_kernel


_sized_kernels: dict = {}


def _sized(cache, build, kh, kw, dtype):
    """cache[(kh, kw, dtype)], built by build(kh, kw, Numba dtype) on first use: a kernel
    compiled for one kernel size and dtype (a NumPy dtype or scalar type)."""
    key = (kh, kw, np.dtype(dtype))
    kernel = cache.get(key)
    if kernel is None:
        kernel = cache[key] = build(kh, kw, numpy_support.from_dtype(key[2]))
    return kernel


def sized_im2col_kernel(kh: int, kw: int, dtype):
    """The im2col kernel compiled for kh x kw and `dtype` (a NumPy dtype), built once."""
    return _sized(_sized_kernels, _build_sized_im2col, kh, kw, dtype)


@cuda.jit(device=True, inline=True)
def _output_of_tap(offset, stride, out_size):
    """The output index o with o * stride == offset (offset = pixel + pad - k * dilation, the
    pixel seen as tap k), or -1 where no output reads the pixel through that tap. Stride 1 (the
    common case, the same for every thread) skips the integer divisions."""
    if offset < 0:
        return -1
    o = offset
    if stride != 1:
        if offset % stride != 0:
            return -1
        o = offset // stride
    return o if o < out_size else -1


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
            oy = _output_of_tap(iy + ph - ky * dy, sy, out_h)
            if oy < 0:
                continue
            for kx in range(kw):
                ox = _output_of_tap(ix + pw - kx * dx, sx, out_w)
                if ox < 0:
                    continue
                if channel_major:
                    acc += cols[c, ky, kx, n, oy, ox]
                else:
                    acc += cols[n, c, ky, kx, oy, ox]
        x[n, c, iy, ix] = acc


@cuda.jit(device=True, inline=True)
def _output_of_tap_by(offset, stride, magic, out_size):
    """_output_of_tap with the division done by divmod_by (magic = division_magic(stride)): the
    output index o with o * stride == offset, or -1 where no output reads the pixel through that
    tap. Stride 1 costs no multiplication (divmod_by's shortcut)."""
    if offset < 0:
        return -1  # (also keeps divmod_by to the non-negative numbers it is exact for)
    o, r = divmod_by(offset, stride, magic)
    return o if r == 0 and o < out_size else -1


def _build_sized_col2im(kh, kw, dtype):
    taps = kh * kw

    @cuda.jit
    def sized_col2im_kernel(cols, n_img, n_ch, h, w, sy, sx, ph, pw, dy, dx, out_h, out_w,
                            magic_h, magic_w, magic_ch, magic_sy, magic_sx, channel_major, x):
        """col2im for a kh x kw kernel (compile-time constants) on flat views: one thread per
        image pixel, a gather like col2im_kernel, with no integer division. The pixel index is
        split by multiply-highs (col2im_kernel divides it by w, h and C in software), and
        the output row that each kernel row reads the pixel into (the output column, each
        kernel column) is worked out once: kh + kw divisions by the stride, none for stride 1,
        where col2im_kernel divides twice per tap. Then every tap is loaded, then the taps are
        summed in (ky, kx) order from +0, as col2im_kernel and col2im_reference add them:
        equal to the bit. A tap that reads nothing adds +0, which changes no sum (one that
        starts at +0 is never -0). The grid-stride loop is a while loop: range() with a
        runtime step divides to count its trips."""
        plane = out_h * out_w
        # Column entries between one tap of a pixel and the next, in either layout:
        # (C, kh, kw, N, out_h, out_w) or (N, C, kh, kw, out_h, out_w).
        tap_stride = n_img * plane if channel_major else plane
        zero = x.dtype.type(0)
        step = cuda.gridsize(1)
        i = cuda.grid(1)
        while i < x.size:
            rest, ix = divmod_by(i, w, magic_w)
            image, iy = divmod_by(rest, h, magic_h)  # image = n * n_ch + c
            if channel_major:
                n, c = divmod_by(image, n_ch, magic_ch)
                base = c * taps * tap_stride + n * plane
            else:
                base = image * taps * plane
            # The offset of output row oy (oy * out_w) that kernel row ky reads this pixel
            # into, and the output column of kernel column kx; -1 where there is none.
            row_at = cuda.local.array(kh, int64)
            for ky in range(kh):
                oy = _output_of_tap_by(iy + ph - ky * dy, sy, magic_sy, out_h)
                row_at[ky] = oy * out_w if oy >= 0 else -1
            col_at = cuda.local.array(kw, int64)
            for kx in range(kw):
                col_at[kx] = _output_of_tap_by(ix + pw - kx * dx, sx, magic_sx, out_w)
            # Loads first, sums after: every tap's load is issued before the first add waits.
            vals = cuda.local.array(taps, dtype)
            for ky in range(kh):
                for kx in range(kw):
                    k = ky * kw + kx
                    v = zero
                    if row_at[ky] >= 0 and col_at[kx] >= 0:
                        v = cols[uint64(base + k * tap_stride + row_at[ky] + col_at[kx])]
                    vals[k] = v
            acc = zero
            for k in range(taps):
                acc += vals[k]
            x[uint64(i)] = acc
            i += step

    return sized_col2im_kernel


_sized_col2im_kernels: dict = {}


def sized_col2im_kernel(kh: int, kw: int, dtype):
    """The col2im kernel compiled for kh x kw (at most MAX_SIZED_TAPS taps) and `dtype` (a
    NumPy dtype), built once."""
    if kh * kw > MAX_SIZED_TAPS:
        raise ValueError(f"sized_col2im_kernel: {kh}x{kw} is more than {MAX_SIZED_TAPS} taps")
    return _sized(_sized_col2im_kernels, _build_sized_col2im, kh, kw, dtype)


def uses_sized_kernel(kh: int, kw: int, n_items: int, *divisors: int) -> bool:
    """Whether im2col / col2im run the kernel compiled for kh x kw: up to MAX_SIZED_TAPS taps,
    and only where divmod_by is exact, n_items * d < 2**64 for every divisor d it splits an
    item index by (a single image row of 2**32 pixels would break that; the generic kernels
    divide exactly at any size)."""
    return kh * kw <= MAX_SIZED_TAPS and n_items * max(divisors, default=1) < 2**64


def im2col(x, kh, kw, sy, sx, ph, pw, dy, dx, pad_value, channel_major, cols, device) -> None:
    """Fill C-contiguous columns `cols` in either layout from the (N, C, H, W) image `x`."""
    n_img, n_ch, h, w = x.shape
    out_h, out_w = cols.shape[4], cols.shape[5]
    if cols.size == 0:
        return  # no channels or images: nothing to launch (and no divisor to prepare)
    if uses_sized_kernel(kh, kw, n_img * n_ch * out_h * out_w, out_h, out_w, n_ch):
        launch_elementwise(
            sized_im2col_kernel(kh, kw, x.dtype), n_img * n_ch * out_h * out_w, device,
            x.reshape(-1), n_img, n_ch, h, w, sy, sx, ph, pw, dy, dx, pad_value, out_h, out_w,
            division_magic(out_h), division_magic(out_w), division_magic(n_ch), channel_major,
            cols.reshape(-1),
        )  # fmt: skip
        return
    launch_elementwise(
        im2col_kernel, n_img * n_ch * out_h * out_w, device,
        x.reshape(-1), n_img, n_ch, h, w, kh, kw, sy, sx, ph, pw, dy, dx, pad_value, out_h, out_w,
        channel_major, cols.reshape(-1),
    )  # fmt: skip


def col2im(cols, kh, kw, sy, sx, ph, pw, dy, dx, channel_major, x, device) -> None:
    """Fill the C-contiguous (N, C, H, W) image `x` (kernels.col2im allocates it) from
    C-contiguous columns in either layout."""
    if x.size == 0:
        return  # no channels or images: nothing to launch (and no divisor to prepare)
    n_img, n_ch, h, w = x.shape
    # The pixel index is split by w, h and C; a pixel offset (< h + pad) by the strides.
    if uses_sized_kernel(kh, kw, x.size, h, w, n_ch):
        out_h, out_w = cols.shape[4], cols.shape[5]
        launch_elementwise(
            sized_col2im_kernel(kh, kw, x.dtype), x.size, device,
            cols.reshape(-1), n_img, n_ch, h, w, sy, sx, ph, pw, dy, dx, out_h, out_w,
            division_magic(h), division_magic(w), division_magic(n_ch), division_magic(sy),
            division_magic(sx), channel_major, x.reshape(-1),
        )  # fmt: skip
        return
    launch_elementwise(
        col2im_kernel, x.size, device, cols, kh, kw, sy, sx, ph, pw, dy, dx, channel_major, x
    )


def signatures(dtype):
    """(name, kernel, argument types) for each kernel as the dispatchers launch it."""
    f = types.float64 if dtype == "float64" else types.float32
    i = types.int64
    b = types.boolean
    flat = types.Array(f, 1, "C")
    x4 = types.Array(f, 4, "C")
    cols6 = types.Array(f, 6, "C")
    u = types.uint64
    sized = sized_im2col_kernel(3, 3, numpy_support.as_dtype(f))
    sized_col2im = sized_col2im_kernel(3, 3, numpy_support.as_dtype(f))
    return [
        ("im2col_kernel", im2col_kernel, (flat, *[i] * 12, f, i, i, b, flat)),
        ("sized_im2col_kernel[3x3]", sized, (flat, *[i] * 10, f, i, i, u, u, u, b, flat)),
        ("col2im_kernel", col2im_kernel, (cols6, i, i, i, i, i, i, i, i, b, x4)),
        ("sized_col2im_kernel[3x3]", sized_col2im, (flat, *[i] * 12, *[u] * 5, b, flat)),
    ]
