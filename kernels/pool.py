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

import numpy as np
from numba import njit, prange

from gpugrad import backend
from gpugrad.kernels._launch import CUDA, REFERENCE, choose_path
from gpugrad.kernels.checks import check_float_array
from gpugrad.kernels.conv import _check_geometry, _check_positive_ints

INDEX_DTYPE = np.dtype(np.int64)


def pool_output_size(in_size: int, k: int, s: int, p: int, d: int, ceil_mode=False) -> int:
    """Output length along one axis, PyTorch's pooling_output_shape.

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
    out_h = pool_output_size(h, kh, sy, ph, dy, ceil_mode)
    out_w = pool_output_size(w, kw, sx, pw, dx, ceil_mode)
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
    (kh, kw), (sy, sx), (ph, pw), (dy, dx) = kernel_size, stride, padding, dilation
    full_h = max(in_h + 2 * ph, (out_h - 1) * sy + (kh - 1) * dy + 1)
    full_w = max(in_w + 2 * pw, (out_w - 1) * sx + (kw - 1) * dx + 1)
    img = xp.zeros((n, c, full_h, full_w), dtype=gy.dtype)
    matched = xp.zeros(gy.shape, dtype=np.int64)
    zero = gy.dtype.type(0)
    for ky in range(kh):
        rows = _tap_rows(xp, out_h, ky, sy, ph, dy).reshape(-1, 1)
        for kx in range(kw):
            cols = _tap_rows(xp, out_w, kx, sx, pw, dx).reshape(1, -1)
            inside = (rows >= 0) & (rows < in_h) & (cols >= 0) & (cols < in_w)
            hit = inside & (argmax == rows * in_w + cols)
            matched += hit
            img[:, :, ky * dy : ky * dy + sy * out_h : sy,
                kx * dx : kx * dx + sx * out_w : sx] += xp.where(hit, gy, zero)
    misses = int((matched != 1).sum())
    if misses:
        raise ValueError(
            f"max_pool2d_backward: {misses} argmax entries are not in-image taps of their "
            "window; argmax must come from max_pool2d_forward with the same geometry"
        )
    return xp.ascontiguousarray(img[:, :, ph : ph + in_h, pw : pw + in_w])


# ----------------------------------------------------------------------------- CPU twins
# Parallel over (n, c) planes: a plane is read and written by one thread only, so the backward's
# sums need no atomics and add in output order, bit for bit like the CUDA gather. Each window's
# in-image range is worked out once (PyTorch's hstart/hend), so the tap loops test no bounds.
# The backward checks each argmax against its window with integer division; that costs little
# next to the scatter and turns a foreign argmax into an error instead of a write out of bounds.


@njit(cache=True)
def _window(o, s, p, d, k, size):
    """[start, end) of the in-image taps of window `o` along one axis (step d)."""
    start = o * s - p
    end = min(start + (k - 1) * d + 1, size)
    while start < 0:
        start += d
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
def _max_pool2d_backward_cpu(gy, argmax, sy, sx, ph, pw, dy, dx, kh, kw, gx, misses):
    """Scatter each gy to its argmax, counting per plane the argmax entries that are not an
    in-image tap of their own window (those are skipped, and the dispatcher raises)."""
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
        bad = 0
        for oy in range(out_h):
            y0, y1 = _window(oy, sy, ph, dy, kh, h)
            for ox in range(out_w):
                x0, x1 = _window(ox, sx, pw, dx, kw, w)
                a = arg[oy, ox]
                iy = a // w
                ix = a - iy * w
                if (a < 0 or iy < y0 or iy >= y1 or ix < x0 or ix >= x1
                        or (iy - y0) % dy != 0 or (ix - x0) % dx != 0):
                    bad += 1
                    continue
                dst[iy, ix] += src[oy, ox]
        misses[plane] = bad


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
def _max_pool2d_2x2_backward_cpu(gy, argmax, gx, misses):
    """Each window's four pixels get gy or 0; the pixels past the last window get 0."""
    n_img, n_ch, h, w = gx.shape
    out_h, out_w = gy.shape[2], gy.shape[3]
    zero = gx.dtype.type(0)
    for plane in prange(n_img * n_ch):
        n = plane // n_ch
        c = plane % n_ch
        dst = gx[n, c]
        src = gy[n, c]
        arg = argmax[n, c]
        bad = 0
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
                if a != at and a != at + 1 and a != at + w and a != at + w + 1:
                    bad += 1
            for ix in range(2 * out_w, w):
                top[ix] = zero
                bottom[ix] = zero
        for iy in range(2 * out_h, h):
            for ix in range(w):
                dst[iy, ix] = zero
        misses[plane] = bad


# ----------------------------------------------------------------------------- dispatchers


def max_pool2d_forward(x, kernel_size, stride, padding, dilation, device="cpu", ceil_mode=False):
    """(y, argmax) of NCHW `x`: y has x's dtype, argmax is int64, both (N, C, out_h, out_w)."""
    op = "max_pool2d"
    path = choose_path(op, device, x)
    check_float_array(op, "x", x, ndim=4)
    geometry = _check_geometry(op, kernel_size, stride, padding, dilation)
    (kh, kw), (sy, sx), (ph, pw), (dy, dx) = geometry
    n, c, h, w = x.shape
    out_h, out_w = _check_windows(op, h, w, geometry, ceil_mode)
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
                        device="cpu", ceil_mode=False):
    """gx (N, C, in_h, in_w): each gy added at its argmax.

    The CPU twin and the reference raise if an argmax is not an in-image tap of its window (it
    did not come from max_pool2d_forward with this geometry); the CUDA gather skips such entries
    instead, since checking there would stall the host on the GPU.
    """
    op = "max_pool2d_backward"
    path = choose_path(op, device, gy, argmax)
    check_float_array(op, "gy", gy, ndim=4)
    geometry = _check_geometry(op, kernel_size, stride, padding, dilation)
    (kh, kw), (sy, sx), (ph, pw), (dy, dx) = geometry
    in_h, in_w = _check_positive_ints(op, "input size", (in_h, in_w))
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
    if path == REFERENCE:
        return max_pool2d_backward_reference(gy, argmax, in_h, in_w, *geometry)
    xp = backend.array_module(gy)
    gy = xp.ascontiguousarray(gy)
    argmax = xp.ascontiguousarray(argmax)
    gx = backend.empty((n, c, in_h, in_w), gy.dtype, like=gy)
    if path == CUDA:
        from gpugrad.kernels import pool_cuda

        pool_cuda.max_pool2d_backward(gy, argmax, kh, kw, sy, sx, ph, pw, dy, dx, gx, device)
        return gx
    misses = np.empty(n * c, dtype=np.int64)
    if _is_plain_2x2(geometry, (in_h, in_w), out_hw):
        _max_pool2d_2x2_backward_cpu(gy, argmax, gx, misses)
    else:
        _max_pool2d_backward_cpu(gy, argmax, sy, sx, ph, pw, dy, dx, kh, kw, gx, misses)
    total = int(misses.sum())
    if total:
        raise ValueError(
            f"{op}: {total} argmax entries are not in-image taps of their window; argmax must "
            "come from max_pool2d_forward with the same geometry"
        )
    return gx


def __getattr__(name):
    # The CUDA kernels are built on first access so that importing this module does not import
    # numba.cuda.
    if name in ("max_pool2d_forward_kernel", "max_pool2d_backward_kernel"):
        from gpugrad.kernels import pool_cuda

        return getattr(pool_cuda, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ----------------------------------------------------------------------------- argument checks


def _check_windows(op, h, w, geometry, ceil_mode):
    """(out_h, out_w), after checking that every window has at least one in-image tap."""
    (kh, kw), (sy, sx), (ph, pw), (dy, dx) = geometry
    out = []
    for axis, size, k, s, p, d in (("H", h, kh, sy, ph, dy), ("W", w, kw, sx, pw, dx)):
        o = pool_output_size(size, k, s, p, d, ceil_mode)
        if o < 1:
            raise ValueError(
                f"{op}: the dilated kernel {d * (k - 1) + 1} (kernel {k}, dilation {d}) is "
                f"larger than the padded input {size + 2 * p} along {axis} (input {size}, "
                f"padding {p})"
            )
        # Only a window that starts in the padding can miss the image: its first in-image
        # tap must come before both the image's end and the window's last tap.
        for i in range(o):
            start = i * s - p
            if start >= 0:
                break
            first = start + (-start + d - 1) // d * d
            if first >= size or first > start + (k - 1) * d:
                raise ValueError(
                    f"{op}: window {i} along {axis} (kernel {k}, stride {s}, padding {p}, "
                    f"dilation {d}, input {size}) has no tap inside the input"
                )
        out.append(o)
    return tuple(out)
