"""2-D max-pooling forward and backward (NCHW): NumPy reference, CPU twin, dispatcher.

Semantics are PyTorch's. Padding is implicit -inf. Each window is scanned row-major and a tap
replaces the running max when it is greater, or when it is NaN, so a NaN in the window wins (the
last NaN in scan order). ``argmax`` is the flat ``h * W + w`` position of the max in its input
plane (int64, PyTorch's ``return_indices``); a window whose taps are all -inf points at its first
in-image tap. The backward sends each ``gy`` to its argmax; a pixel that is the max of several
overlapping windows receives their sum, added in output (row-major) order on every path.

One difference from PyTorch: a geometry where some window has no tap inside the image (possible
only with dilation and padding, e.g. kernel 2, dilation 3, padding 1 on a 2-pixel input) raises
here, where PyTorch returns -inf and an index outside the window.

The CUDA kernels live in ``pool_cuda`` and are imported on first use.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from gpugrad import backend
from gpugrad.kernels._launch import CUDA, REFERENCE, choose_path
from gpugrad.kernels.checks import check_float_array
from gpugrad.kernels.conv import _check_geometry, _check_int, _check_positive_ints

INDEX_DTYPE = np.dtype(np.int64)


def pool_output_size(in_size: int, k: int, s: int, p: int, d: int, ceil_mode=False) -> int:
    """Output length along one axis, PyTorch's pooling_output_shape, for a caller's own use:
    checks its arguments as conv_output_size does, and raises when no window fits (PyTorch:
    "Output size is too small"). The pooling ops check their geometry themselves, by name,
    and use _pool_output_size."""
    op = "pool_output_size"
    in_size, k = _check_int(op, "in_size", in_size, 0), _check_int(op, "kernel size", k, 1)
    s, p = _check_int(op, "stride", s, 1), _check_int(op, "padding", p, 0)
    d = _check_int(op, "dilation", d, 1)
    if in_size + 2 * p < d * (k - 1) + 1:
        raise ValueError(f"{op}: the dilated kernel ({d * (k - 1) + 1}) is larger than the "
                         f"padded input ({in_size + 2 * p}): no window fits")
    return _pool_output_size(in_size, k, s, p, d, ceil_mode)


def _pool_output_size(in_size: int, k: int, s: int, p: int, d: int, ceil_mode=False) -> int:
    """pool_output_size unchecked (negative where no window fits).

    With ceil_mode the last window may hang past the padded input, but it must start inside the
    image or its left padding, so the output is trimmed by one when it would not.
    """
    span = in_size + 2 * p - d * (k - 1) - 1
    if not ceil_mode:
        return span // s + 1
    out = -(-span // s) + 1
    if (out - 1) * s >= in_size + p:
        out -= 1
    return out


# ----------------------------------------------------------------------------- NumPy reference


def _tap_rows(xp, out_size, k_index, s, p, d):
    """Input coordinate of tap `k_index` of every output along one axis."""
    return xp.arange(out_size) * s - p + k_index * d


def _first_taps(xp, out_size, s, p, d):
    """The first in-image tap of every window along one axis: PyTorch steps a start that lies
    in the padding forward by the dilation until it is inside the image."""
    start = xp.arange(out_size) * s - p
    behind = xp.maximum(-start, 0)
    return start + (behind + d - 1) // d * d


def _padded(x, out_h, out_w, geometry):
    """x inside a -inf border wide enough for every tap of every window (ceil_mode included)."""
    xp = backend.array_module(x)
    n, c, h, w = x.shape
    (kh, kw), (sy, sx), (ph, pw), (dy, dx) = geometry
    full_h = max(h + 2 * ph, (out_h - 1) * sy + (kh - 1) * dy + 1)
    full_w = max(w + 2 * pw, (out_w - 1) * sx + (kw - 1) * dx + 1)
    img = xp.full((n, c, full_h, full_w), -np.inf, dtype=x.dtype)
    img[:, :, ph : ph + h, pw : pw + w] = x
    return img


def max_pool2d_reference(x, kernel_size, stride, padding, dilation, ceil_mode=False):
    """(y, argmax) by one strided slice per tap of a -inf-padded copy; works with CuPy too."""
    xp = backend.array_module(x)
    n, c, h, w = x.shape
    geometry = (kernel_size, stride, padding, dilation)
    (kh, kw), (sy, sx), (ph, pw), (dy, dx) = geometry
    out_h = _pool_output_size(h, kh, sy, ph, dy, ceil_mode)
    out_w = _pool_output_size(w, kw, sx, pw, dx, ceil_mode)
    img = _padded(x, out_h, out_w, geometry)
    best = xp.full((n, c, out_h, out_w), -np.inf, dtype=x.dtype)
    first_row = _first_taps(xp, out_h, sy, ph, dy).reshape(-1, 1)
    first_col = _first_taps(xp, out_w, sx, pw, dx).reshape(1, -1)
    arg = xp.broadcast_to(first_row * w + first_col, best.shape).astype(INDEX_DTYPE)
    for ky in range(kh):
        rows = _tap_rows(xp, out_h, ky, sy, ph, dy).reshape(-1, 1)
        for kx in range(kw):
            cols = _tap_rows(xp, out_w, kx, sx, pw, dx).reshape(1, -1)
            v = img[:, :, ky * dy : ky * dy + sy * out_h : sy, kx * dx : kx * dx + sx * out_w : sx]
            # Padded taps are -inf, which is never > best and never NaN, so they never win.
            take = (v > best) | xp.isnan(v)
            best = xp.where(take, v, best)
            arg = xp.where(take, rows * w + cols, arg)
    return best, arg


def max_pool2d_backward_reference(gy, argmax, in_h, in_w, kernel_size, stride, padding,
                                  dilation):
    """gx: every tap adds gy where it is its window's argmax; raises if an argmax is no tap."""
    xp = backend.array_module(gy)
    n, c, out_h, out_w = gy.shape
    geometry = (kernel_size, stride, padding, dilation)
    _check_argmax("max_pool2d_backward", argmax, in_h, in_w, geometry)
    (kh, kw), (sy, sx), (ph, pw), (dy, dx) = geometry
    full_h = max(in_h + 2 * ph, (out_h - 1) * sy + (kh - 1) * dy + 1)
    full_w = max(in_w + 2 * pw, (out_w - 1) * sx + (kw - 1) * dx + 1)
    img = xp.zeros((n, c, full_h, full_w), dtype=gy.dtype)
    zero = gy.dtype.type(0)
    for ky in range(kh):
        rows = _tap_rows(xp, out_h, ky, sy, ph, dy).reshape(-1, 1)
        for kx in range(kw):
            cols = _tap_rows(xp, out_w, kx, sx, pw, dx).reshape(1, -1)
            inside = (rows >= 0) & (rows < in_h) & (cols >= 0) & (cols < in_w)
            hit = inside & (argmax == rows * in_w + cols)
            img[:, :, ky * dy : ky * dy + sy * out_h : sy,
                kx * dx : kx * dx + sx * out_w : sx] += xp.where(hit, gy, zero)
    return xp.ascontiguousarray(img[:, :, ph : ph + in_h, pw : pw + in_w])


# ----------------------------------------------------------------------------- CPU twins
# Parallel over (n, c) planes: a plane is read and written by one thread only, so the backward's
# sums need no atomics and add in output order, bit for bit like the CUDA gather. Each window's
# in-image range is worked out once (PyTorch's hstart/hend), so the tap loops test no bounds.
# The backward skips an argmax that is not an in-image tap of its window (integer division per
# output, little next to the scatter), so a foreign argmax is never a write out of bounds; the
# dispatcher raises for one unless told the argmax came from the forward.


@njit(cache=True)
def _window(o, s, p, d, k, size):
    """[start, end) of the in-image taps of window `o` along one axis (step d)."""
    start = o * s - p
    end = min(start + (k - 1) * d + 1, size)
    if start < 0:
        # PyTorch's `while start < 0: start += d`, in one step: ceil(-start / d) steps of d.
        start += (d - 1 - start) // d * d
    return start, end


@njit(parallel=True, cache=True)
def _max_pool2d_forward_cpu(x, kh, kw, sy, sx, ph, pw, dy, dx, y, argmax):
    n_img, n_ch, h, w = x.shape
    out_h, out_w = y.shape[2], y.shape[3]
    for plane in prange(n_img * n_ch):
        n = plane // n_ch
        c = plane % n_ch
        img = x[n, c]
        dst = y[n, c]
        arg = argmax[n, c]
        for oy in range(out_h):
            y0, y1 = _window(oy, sy, ph, dy, kh, h)
            for ox in range(out_w):
                x0, x1 = _window(ox, sx, pw, dx, kw, w)
                # The first in-image tap seeds the max: the same as starting from -inf, which
                # it either beats or equals, and no -inf literal is needed.
                best = img[y0, x0]
                best_at = y0 * w + x0
                for iy in range(y0, y1, dy):
                    for ix in range(x0, x1, dx):
                        v = img[iy, ix]
                        if v > best or v != v:
                            best = v
                            best_at = iy * w + ix
                dst[oy, ox] = best
                arg[oy, ox] = best_at


@njit(parallel=True, cache=True)
def _max_pool2d_backward_cpu(gy, argmax, sy, sx, ph, pw, dy, dx, kh, kw, gx):
    """Scatter each gy to its argmax, skipping an argmax that is no in-image tap of its window."""
    n_img, n_ch, h, w = gx.shape
    out_h, out_w = gy.shape[2], gy.shape[3]
    zero = gx.dtype.type(0)
    for plane in prange(n_img * n_ch):
        n = plane // n_ch
        c = plane % n_ch
        dst = gx[n, c]
        src = gy[n, c]
        arg = argmax[n, c]
        for iy in range(h):
            for ix in range(w):
                dst[iy, ix] = zero
        for oy in range(out_h):
            y0, y1 = _window(oy, sy, ph, dy, kh, h)
            for ox in range(out_w):
                x0, x1 = _window(ox, sx, pw, dx, kw, w)
                a = arg[oy, ox]
                iy = a // w
                ix = a - iy * w
                if (a < 0 or iy < y0 or iy >= y1 or ix < x0 or ix >= x1
                        or (iy - y0) % dy != 0 or (ix - x0) % dx != 0):
                    continue
                dst[iy, ix] += src[oy, ox]


# The 2x2, stride-2 pool without padding or dilation (LeNet's, VGG's) gets its own pair: with the
# taps written out there are no tap loops of unknown length, and the forward runs about 4x and
# the backward 3x faster than the general twins on the LeNet shapes (see bench/pool.py). The
# windows tile the image, so the backward writes every pixel once and needs no zeroing pass.


def _is_plain_2x2(geometry, in_hw, out_hw):
    """True for kernel 2, stride 2, no padding or dilation, every window inside the image."""
    return (geometry == ((2, 2), (2, 2), (0, 0), (1, 1))
            and 2 * out_hw[0] <= in_hw[0] and 2 * out_hw[1] <= in_hw[1])


@njit(parallel=True, cache=True)
def _max_pool2d_2x2_forward_cpu(x, y, argmax):
    n_img, n_ch, w = x.shape[0], x.shape[1], x.shape[3]
    out_h, out_w = y.shape[2], y.shape[3]
    for plane in prange(n_img * n_ch):
        n = plane // n_ch
        c = plane % n_ch
        img = x[n, c]
        dst = y[n, c]
        arg = argmax[n, c]
        for oy in range(out_h):
            top = img[2 * oy]
            bottom = img[2 * oy + 1]
            row_at = 2 * oy * w
            for ox in range(out_w):
                ix = 2 * ox
                # Taps in scan order; a later one takes over if greater or NaN.
                best = top[ix]
                best_at = row_at + ix
                v = top[ix + 1]
                if v > best or v != v:
                    best = v
                    best_at = row_at + ix + 1
                v = bottom[ix]
                if v > best or v != v:
                    best = v
                    best_at = row_at + w + ix
                v = bottom[ix + 1]
                if v > best or v != v:
                    best = v
                    best_at = row_at + w + ix + 1
                dst[oy, ox] = best
                arg[oy, ox] = best_at


@njit(parallel=True, cache=True)
def _max_pool2d_2x2_backward_cpu(gy, argmax, gx):
    """Each window's four pixels get gy or 0; the pixels past the last window get 0. An argmax
    that is none of the four sends its gy nowhere."""
    n_img, n_ch, h, w = gx.shape
    out_h, out_w = gy.shape[2], gy.shape[3]
    zero = gx.dtype.type(0)
    for plane in prange(n_img * n_ch):
        n = plane // n_ch
        c = plane % n_ch
        dst = gx[n, c]
        src = gy[n, c]
        arg = argmax[n, c]
        for oy in range(out_h):
            top = dst[2 * oy]
            bottom = dst[2 * oy + 1]
            for ox in range(out_w):
                ix = 2 * ox
                at = 2 * oy * w + ix
                a = arg[oy, ox]
                g = src[oy, ox]
                top[ix] = g if a == at else zero
                top[ix + 1] = g if a == at + 1 else zero
                bottom[ix] = g if a == at + w else zero
                bottom[ix + 1] = g if a == at + w + 1 else zero
            for ix in range(2 * out_w, w):
                top[ix] = zero
                bottom[ix] = zero
        for iy in range(2 * out_h, h):
            for ix in range(w):
                dst[iy, ix] = zero


# ----------------------------------------------------------------------------- dispatchers


def max_pool2d_forward(x, kernel_size, stride, padding, dilation, device="cpu", ceil_mode=False):
    """(y, argmax) of NCHW `x`: y has x's dtype, argmax is int64, both (N, C, out_h, out_w)."""
    op = "max_pool2d"
    path = choose_path(op, device, x)
    check_float_array(op, "x", x, ndim=4)
    geometry = _check_pool_geometry(op, kernel_size, stride, padding, dilation)
    (kh, kw), (sy, sx), (ph, pw), (dy, dx) = geometry
    n, c, h, w = x.shape
    out_h, out_w = _check_windows(op, h, w, geometry, ceil_mode)
    _check_array_size(op, "output", (n, c, out_h, out_w))
    if path == REFERENCE:
        return max_pool2d_reference(x, *geometry, ceil_mode=ceil_mode)
    xp = backend.array_module(x)
    x = xp.ascontiguousarray(x)
    y = backend.empty((n, c, out_h, out_w), x.dtype, like=x)
    argmax = backend.empty((n, c, out_h, out_w), INDEX_DTYPE, like=x)
    if path == CUDA:
        from gpugrad.kernels import pool_cuda

        pool_cuda.max_pool2d_forward(x, kh, kw, sy, sx, ph, pw, dy, dx, y, argmax, device)
    elif _is_plain_2x2(geometry, (h, w), (out_h, out_w)):
        _max_pool2d_2x2_forward_cpu(x, y, argmax)
    else:
        _max_pool2d_forward_cpu(x, kh, kw, sy, sx, ph, pw, dy, dx, y, argmax)
    return y, argmax


def max_pool2d_backward(gy, argmax, in_h, in_w, kernel_size, stride, padding, dilation,
                        device="cpu", ceil_mode=False, check_argmax=True):
    """gx (N, C, in_h, in_w): each gy added at its argmax.

    Raises ValueError if an argmax is not an in-image tap of its window (it did not come from
    max_pool2d_forward with this geometry), on every device; on CUDA the check waits for one
    count to come back to the host. ``check_argmax=False`` skips the check for an argmax known to
    come from the forward (autograd's): the kernels then skip a bad entry, never reading or
    writing out of bounds, and its gradient is lost. The reference always checks.
    """
    op = "max_pool2d_backward"
    path = choose_path(op, device, gy, argmax)
    check_float_array(op, "gy", gy, ndim=4)
    geometry = _check_pool_geometry(op, kernel_size, stride, padding, dilation)
    (kh, kw), (sy, sx), (ph, pw), (dy, dx) = geometry
    in_h, in_w = _check_positive_ints(op, "input size", (in_h, in_w))
    if in_h * in_w > _INT64_MAX:
        raise ValueError(f"{op}: input size {in_h}x{in_w} is too large: flat argmax positions "
                         "would not fit in int64")
    out_hw = _check_windows(op, in_h, in_w, geometry, ceil_mode)
    n, c = gy.shape[:2]
    if tuple(gy.shape[2:]) != out_hw:
        raise ValueError(
            f"{op}: an input of {in_h}x{in_w} with kernel {(kh, kw)}, stride {(sy, sx)}, padding "
            f"{(ph, pw)}, dilation {(dy, dx)}, ceil_mode={ceil_mode} pools to "
            f"{out_hw[0]}x{out_hw[1]}, but gy is {tuple(gy.shape)}"
        )
    if getattr(argmax, "dtype", None) != INDEX_DTYPE:
        raise TypeError(f"{op}: argmax must be int64, got {getattr(argmax, 'dtype', argmax)}")
    if tuple(argmax.shape) != tuple(gy.shape):
        raise ValueError(
            f"{op}: argmax must have gy's shape {tuple(gy.shape)}, got {tuple(argmax.shape)}"
        )
    _check_array_size(op, "gradient", (n, c, in_h, in_w))
    if path == REFERENCE:
        return max_pool2d_backward_reference(gy, argmax, in_h, in_w, *geometry)
    if check_argmax:
        _check_argmax(op, argmax, in_h, in_w, geometry)
    xp = backend.array_module(gy)
    gy = xp.ascontiguousarray(gy)
    argmax = xp.ascontiguousarray(argmax)
    gx = backend.empty((n, c, in_h, in_w), gy.dtype, like=gy)
    if path == CUDA:
        from gpugrad.kernels import pool_cuda

        pool_cuda.max_pool2d_backward(gy, argmax, kh, kw, sy, sx, ph, pw, dy, dx, gx, device)
    elif _is_plain_2x2(geometry, (in_h, in_w), out_hw):
        _max_pool2d_2x2_backward_cpu(gy, argmax, gx)
    else:
        _max_pool2d_backward_cpu(gy, argmax, sy, sx, ph, pw, dy, dx, kh, kw, gx)
    return gx


def __getattr__(name):
    # The CUDA kernels are built on first access so that importing this module does not import
    # numba.cuda.
    if name in ("max_pool2d_forward_kernel", "max_pool2d_backward_kernel"):
        from gpugrad.kernels import pool_cuda

        return getattr(pool_cuda, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ----------------------------------------------------------------------------- argument checks


# PyTorch's pooling takes its geometry as C ints and raises above 2**31 - 1. The same limit here
# keeps every product of two geometry values (a window's span (k - 1) * d, o * s) far inside
# int64 in the Numba and CUDA kernels, where a larger value would wrap or, from 2**63, be typed
# uint64.
MAX_GEOMETRY = 2**31 - 1
_INT64_MAX = 2**63 - 1


def _check_pool_geometry(op, kernel_size, stride, padding, dilation):
    """((kh, kw), (sy, sx), (ph, pw), (dy, dx)) as ints, each at most MAX_GEOMETRY."""
    geometry = _check_geometry(op, kernel_size, stride, padding, dilation)
    for name, pair in zip(("kernel_size", "stride", "padding", "dilation"), geometry):
        if max(pair) > MAX_GEOMETRY:
            raise ValueError(
                f"{op}: {name} {pair} is too large: each value must be at most 2**31 - 1 "
                f"({MAX_GEOMETRY}), as in PyTorch"
            )
    return geometry


def _check_array_size(op, what, shape):
    """A clear error for an array larger than any can be (NumPy: "array is too big")."""
    if math.prod(shape) * INDEX_DTYPE.itemsize > _INT64_MAX:
        raise ValueError(f"{op}: the {what} would have shape {shape}, more than an array can "
                         "hold; check the kernel size, stride, padding and dilation")


def _check_windows(op, h, w, geometry, ceil_mode):
    """(out_h, out_w), after checking that every window has at least one in-image tap."""
    (kh, kw), (sy, sx), (ph, pw), (dy, dx) = geometry
    out = []
    for axis, size, k, s, p, d in (("H", h, kh, sy, ph, dy), ("W", w, kw, sx, pw, dx)):
        o = _pool_output_size(size, k, s, p, d, ceil_mode)
        if o < 1:
            raise ValueError(
                f"{op}: the dilated kernel {d * (k - 1) + 1} (kernel {k}, dilation {d}) is "
                f"larger than the padded input {size + 2 * p} along {axis} (input {size}, "
                f"padding {p})"
            )
        i = _first_window_without_taps(o, size, k, s, p, d)
        if i is not None:
            raise ValueError(
                f"{op}: window {i} along {axis} (kernel {k}, stride {s}, padding {p}, "
                f"dilation {d}, input {size}) has no tap inside the input"
            )
        out.append(o)
    return tuple(out)


def _first_window_without_taps(o, size, k, s, p, d):
    """The first of the `o` windows along an axis with no tap in [0, size), or None.

    Without a loop over the windows (there can be ~2**32 of them). Only a window that starts in
    the padding, i < ceil(p / s), can miss: the others start inside the image. Window i starts
    at i*s - p < 0, and its first tap at or past 0 is (i*s - p) mod d, which misses if it is
    past the window's last tap or at or past `size`. The first happens for window 0 if at all
    (it starts furthest out); the second only when d > size.
    """
    in_padding = min(o, -(-p // s))
    if in_padding == 0:
        return None
    if p > (k - 1) * d:
        return 0
    if d <= size:
        return None
    # (i*s - p) mod d >= size  <=>  i*s mod d in the cyclic range [size + p, p - 1] (mod d).
    lo, hi = (size + p) % d, (p - 1) % d
    ranges = [(lo, hi)] if lo <= hi else [(lo, d - 1), (0, hi)]
    hits = [i for i in (_first_multiple_in(s, d, a, b) for a, b in ranges) if i is not None]
    first = min(hits, default=None)
    return first if first is not None and first < in_padding else None


def _first_multiple_in(s, d, lo, hi):
    """The smallest i >= 0 with lo <= (i * s) mod d <= hi (0 <= lo <= hi < d), or None.

    Euclid's algorithm on (s, d), O(log d) calls. If no multiple of s lies in [lo, hi], the
    answer lies past a wrap: after j wraps, i*s - j*d lands in [lo, hi] for some i exactly
    when j*d mod s lies in [-hi mod s, -lo mod s] (a range, since [lo, hi] holds no multiple
    of s), and the first such j gives the first i, as j*d grows with i.
    """
    if lo == 0:
        return 0
    s %= d
    if s == 0:
        return None
    i = -(-lo // s)
    if i * s <= hi:
        return i
    j = _first_multiple_in(d % s, s, -hi % s, -lo % s)
    return None if j is None else -(-(lo + j * d) // s)


def _check_argmax(op, argmax, in_h, in_w, geometry):
    """Raise unless every argmax is an in-image tap of its own window; NumPy or CuPy.

    The test of the CPU twin's backward, on whole arrays: argmax a of window (oy, ox) must be
    row a // W and column a mod W, each inside the window's in-image range and on its dilation
    grid. One count is read back to the host (a sync on CUDA); the first bad entry only on error.
    """
    xp = backend.array_module(argmax)
    (kh, kw), (sy, sx), (ph, pw), (dy, dx) = geometry
    out_h, out_w = argmax.shape[2:]
    rows, cols = xp.divmod(argmax, in_w)  # floor division: a negative argmax gets a row < 0
    ok = None
    for at, out_size, size, k, s, p, d, shape in ((rows, out_h, in_h, kh, sy, ph, dy, (-1, 1)),
                                                   (cols, out_w, in_w, kw, sx, pw, dx, (1, -1))):
        first = _first_taps(xp, out_size, s, p, d).reshape(shape)
        end = xp.minimum(_tap_rows(xp, out_size, k - 1, s, p, d) + 1, size).reshape(shape)
        # `at - first` can wrap for a huge negative argmax, but then `at >= first` is False.
        inside = (at >= first) & (at < end) & ((at - first) % d == 0)
        ok = inside if ok is None else ok & inside
    bad = ~ok
    count = int(bad.sum())
    if count:
        where = np.unravel_index(int(xp.argmax(bad)), bad.shape)
        at = ", ".join(str(int(i)) for i in where)
        raise ValueError(
            f"{op}: {count} argmax entries are not in-image taps of their window (the first is "
            f"argmax[{at}] = {int(argmax[where])}); argmax must come from max_pool2d_forward "
            "with the same geometry"
        )
