"""im2col and col2im for NCHW convolution and pooling: NumPy reference, CPU twin, dispatcher.

``cols[n, c, ky, kx, oy, ox]`` is the input pixel
``x[n, c, oy*sy - ph + ky*dy, ox*sx - pw + kx*dx]``, or ``pad_value`` where that tap falls outside
the image. col2im is the adjoint of im2col with
pad_value 0: every pixel receives the sum of the columns that read it. Groups are the caller's
business (it slices C).

Two memory layouts of the same columns:
    "batch"    (N, C, kh, kw, out_h, out_w): a (C*kh*kw, out_h*out_w) matrix per image
    "channel"  (C, kh, kw, N, out_h, out_w): one (C*kh*kw, N*out_h*out_w) matrix
conv2d uses "channel": each of its three GEMMs is then one large product instead of N small
ones (a batched matmul), which BLAS and cuBLAS run faster (bench/results/kernels-cpu.json).
The CUDA kernels live in ``conv_cuda`` and are imported on first use; ``im2col_kernel`` and
``col2im_kernel`` are still reachable as attributes of this module.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

from gpugrad import backend
from gpugrad.kernels._launch import CPU, CUDA, REFERENCE, choose_path, run_cpu_twin
from gpugrad.kernels.checks import check_float_array, check_same_dtype


def conv_output_size(in_size: int, k: int, s: int, p: int, d: int) -> int:
    """Output length along one axis, PyTorch's formula floor((in + 2p - d(k-1) - 1) / s) + 1.

    Checks its arguments as im2col does (ints within int64, k, s, d >= 1, in_size, p >= 0) and
    raises ValueError when the dilated kernel is larger than the padded input."""
    op = "conv_output_size"
    return _axis_output_size(
        op, None, _check_int(op, "in_size", in_size, 0), _check_int(op, "kernel size", k, 1),
        _check_int(op, "stride", s, 1), _check_int(op, "padding", p, 0),
        _check_int(op, "dilation", d, 1),
    )


# ----------------------------------------------------------------------------- NumPy reference


LAYOUTS = ("batch", "channel")


def _to_layout(cols, layout):
    """Batch-layout columns in `layout` (a contiguous copy for "channel")."""
    if layout == "batch":
        return cols
    return backend.array_module(cols).ascontiguousarray(cols.transpose(1, 2, 3, 0, 4, 5))


def _from_layout(cols, layout):
    """Columns in `layout` as a batch-layout view."""
    return cols if layout == "batch" else cols.transpose(3, 0, 1, 2, 4, 5)


def im2col_reference(x, kernel_size, stride, padding, dilation, pad_value=0.0, layout="batch"):
    """im2col by strided slices of a padded copy (Chainer's im2col_cpu); works with CuPy too."""
    xp = backend.array_module(x)
    n, c, h, w = x.shape
    (kh, kw), (sy, sx), (ph, pw), (dy, dx) = kernel_size, stride, padding, dilation
    out_h = (h + 2 * ph - dy * (kh - 1) - 1) // sy + 1
    out_w = (w + 2 * pw - dx * (kw - 1) - 1) // sx + 1
    img = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
    cols = xp.empty((n, c, kh, kw, out_h, out_w), dtype=x.dtype)
    for ky in range(kh):
        y0 = ky * dy
        for kx in range(kw):
            x0 = kx * dx
            cols[:, :, ky, kx] = img[:, :, y0 : y0 + sy * out_h : sy, x0 : x0 + sx * out_w : sx]
    return _to_layout(cols, layout)


def col2im_reference(cols, in_h, in_w, stride, padding, dilation, layout="batch"):
    """col2im by strided slice-adds into a padded image, cropped at the end."""
    xp = backend.array_module(cols)
    cols = _from_layout(cols, layout)
    n, c, kh, kw, out_h, out_w = cols.shape
    (sy, sx), (ph, pw), (dy, dx) = stride, padding, dilation
    img = xp.zeros((n, c, in_h + 2 * ph, in_w + 2 * pw), dtype=cols.dtype)
    for ky in range(kh):
        y0 = ky * dy
        for kx in range(kw):
            x0 = kx * dx
            img[:, :, y0 : y0 + sy * out_h : sy, x0 : x0 + sx * out_w : sx] += cols[:, :, ky, kx]
    return xp.ascontiguousarray(img[:, :, ph : ph + in_h, pw : pw + in_w])


# ----------------------------------------------------------------------------- CPU twins
# Numba over NumPy here: the reference makes kh*kw strided copies of a padded image, each a
# separate pass over memory; the twin walks each (n, c) plane once per tap with the in-image
# range of every output row worked out up front, so the inner loop has no bounds tests. On the
# bench shape (64x32x14x14, 3x3, pad 1, 2 threads) im2col is 3.5x and col2im 6x faster than
# NumPy (bench/results/kernels-cpu.json). Parallel over (n, c) planes: each plane is written by one
# thread only, so col2im's sums are deterministic and match the CUDA gather bit for bit (same
# (ky, kx) order per pixel).
#
# The twins index flat views with unsigned offsets: for a signed index Numba tests for a
# negative value (Python's wraparound) on every access, which made these loops 3x slower.


@njit(cache=True)
def _valid_range(offset, stride, size, out_size):
    """The outputs o in [lo, hi) whose tap o*stride + offset lands inside [0, size).

    lo is clamped to out_size: callers pad [0, lo) of a row, which must not run past it."""
    lo = min(max(0, -(offset // stride)), out_size)
    hi = min(out_size, (size - 1 - offset) // stride + 1)
    return lo, max(lo, hi)


@njit(cache=True, inline="always")
def _fill(flat, start, count, value):
    for j in range(count):
        flat[start + np.uint64(j)] = value


@njit(cache=True, inline="always")
def _plane(p, n_img, n_ch, channel_major):
    """(n, c) of the p-th plane a twin visits: in the order of the columns' memory, so that
    consecutive planes read or write consecutive column rows (c-major in the channel layout)."""
    if channel_major:
        return p % n_img, p // n_img
    return p // n_ch, p % n_ch


@njit(cache=True, inline="always")
def _tap_start(n, c, n_img, n_ch, kh, kw, ky, kx, out_h, out_w, channel_major):
    """Flat offset in the columns of tap (ky, kx) of image plane (n, c)."""
    if channel_major:  # (C, kh, kw, N, out_h, out_w)
        return (((c * kh + ky) * kw + kx) * n_img + n) * out_h * out_w
    return (((n * n_ch + c) * kh + ky) * kw + kx) * out_h * out_w  # (N, C, kh, kw, oh, ow)


@njit(parallel=True, cache=True)
def _im2col_cpu(x, kh, kw, sy, sx, ph, pw, dy, dx, pad_value, channel_major, cols):
    n_img, n_ch, h, w = x.shape
    out_h, out_w = cols.shape[4], cols.shape[5]
    src = x.reshape(-1)
    dst = cols.reshape(-1)
    for p in prange(n_img * n_ch):
        n, c = _plane(p, n_img, n_ch, channel_major)
        plane = n * n_ch + c
        for ky in range(kh):
            oy_lo, oy_hi = _valid_range(ky * dy - ph, sy, h, out_h)
            for kx in range(kw):
                ox_lo, ox_hi = _valid_range(kx * dx - pw, sx, w, out_w)
                tap = _tap_start(n, c, n_img, n_ch, kh, kw, ky, kx, out_h, out_w, channel_major)
                for oy in range(out_h):
                    d = np.uint64(tap + oy * out_w)
                    if oy < oy_lo or oy >= oy_hi:
                        _fill(dst, d, out_w, pad_value)
                        continue
                    # Input offset of the first in-image tap of this output row.
                    iy = oy * sy + ky * dy - ph
                    s = np.uint64((plane * h + iy) * w + ox_lo * sx + kx * dx - pw)
                    _fill(dst, d, ox_lo, pad_value)
                    d_in = d + np.uint64(ox_lo)
                    for j in range(ox_hi - ox_lo):
                        dst[d_in + np.uint64(j)] = src[s + np.uint64(j * sx)]
                    _fill(dst, d + np.uint64(ox_hi), out_w - ox_hi, pad_value)


@njit(parallel=True, cache=True)
def _col2im_cpu(cols, kh, kw, sy, sx, ph, pw, dy, dx, channel_major, x):
    n_img, n_ch, h, w = x.shape
    out_h, out_w = cols.shape[4], cols.shape[5]
    src = cols.reshape(-1)
    img = x.reshape(-1)
    zero = x.dtype.type(0)
    for p in prange(n_img * n_ch):
        n, c = _plane(p, n_img, n_ch, channel_major)
        plane = n * n_ch + c
        _fill(img, np.uint64(plane * h * w), h * w, zero)
        for ky in range(kh):
            oy_lo, oy_hi = _valid_range(ky * dy - ph, sy, h, out_h)
            for kx in range(kw):
                ox_lo, ox_hi = _valid_range(kx * dx - pw, sx, w, out_w)
                tap = _tap_start(n, c, n_img, n_ch, kh, kw, ky, kx, out_h, out_w, channel_major)
                for oy in range(oy_lo, oy_hi):
                    col = np.uint64(tap + oy * out_w + ox_lo)
                    iy = oy * sy + ky * dy - ph
                    s = np.uint64((plane * h + iy) * w + ox_lo * sx + kx * dx - pw)
                    for j in range(ox_hi - ox_lo):
                        img[s + np.uint64(j * sx)] += src[col + np.uint64(j)]


# ----------------------------------------------------------------------------- dispatchers


def im2col(x, kernel_size, stride, padding, dilation, pad_value=0.0, device="cpu",
           layout="batch"):
    """Unfold NCHW `x` into columns, (N, C, kh, kw, out_h, out_w) or in the "channel" layout
    (C, kh, kw, N, out_h, out_w); same dtype as x."""
    op = "im2col"
    path = choose_path(op, device, x)
    check_float_array(op, "x", x, ndim=4)
    channel_major = _check_layout(op, layout)
    geometry = _check_geometry(op, kernel_size, stride, padding, dilation)
    (kh, kw), (sy, sx), (ph, pw), (dy, dx) = geometry
    fill = _check_pad_value(op, pad_value, x.dtype)
    n, c, h, w = x.shape
    out_h, out_w = _check_output_size(op, h, w, geometry)
    shape = (c, kh, kw, n, out_h, out_w) if channel_major else (n, c, kh, kw, out_h, out_w)
    if path == REFERENCE:
        # The reference also pads a copy of the whole image.
        padded = (n, c, h + 2 * ph, w + 2 * pw)
        _check_nbytes(op, "padded input", padded, x.dtype)
        _check_nbytes(op, "columns", shape, x.dtype)
        try:
            return im2col_reference(x, *geometry, pad_value=fill, layout=layout)
        except MemoryError as e:
            raise MemoryError(f"{op}: the reference cannot allocate its padded input {padded} "
                              f"or the columns {shape} ({x.dtype}): {e}") from e
    xp = backend.array_module(x)
    x = xp.ascontiguousarray(x)
    cols = _empty(op, "columns", shape, x.dtype, like=x)
    args = (x, kh, kw, sy, sx, ph, pw, dy, dx, fill, channel_major, cols)
    if path == CUDA:
        from gpugrad.kernels import conv_cuda

        conv_cuda.im2col(*args, device)
    else:
        run_cpu_twin(_im2col_cpu, cols.size, *args)
    return cols


def col2im(cols, in_h, in_w, stride, padding, dilation, device="cpu", layout="batch"):
    """Fold columns, (N, C, kh, kw, out_h, out_w) or in the "channel" layout
    (C, kh, kw, N, out_h, out_w), back into an (N, C, in_h, in_w) image by summing."""
    op = "col2im"
    path = choose_path(op, device, cols)
    check_float_array(op, "cols", cols, ndim=6)
    channel_major = _check_layout(op, layout)
    if channel_major:
        c, kh, kw, n, out_h, out_w = cols.shape
    else:
        n, c, kh, kw, out_h, out_w = cols.shape
    geometry = _check_geometry(op, (kh, kw), stride, padding, dilation)
    _, (sy, sx), (ph, pw), (dy, dx) = geometry
    in_h, in_w = _check_positive_ints(op, "image size", (in_h, in_w))
    expected = _check_output_size(op, in_h, in_w, geometry)
    if expected != (out_h, out_w):
        raise ValueError(
            f"{op}: an image of {in_h}x{in_w} with kernel {kh}x{kw}, stride {(sy, sx)}, padding "
            f"{(ph, pw)}, dilation {(dy, dx)} gives {expected[0]}x{expected[1]} columns, "
            f"but cols has {out_h}x{out_w}"
        )
    shape = (n, c, in_h, in_w)
    if path == REFERENCE:
        # The reference sums into a padded image and crops it.
        padded = (n, c, in_h + 2 * ph, in_w + 2 * pw)
        _check_nbytes(op, "padded image", padded, cols.dtype)
        try:
            return col2im_reference(cols, in_h, in_w, *geometry[1:], layout=layout)
        except MemoryError as e:
            raise _out_of_memory(op, "padded image", padded, cols.dtype, e) from e
    xp = backend.array_module(cols)
    cols = xp.ascontiguousarray(cols)
    x = _empty(op, "image", shape, cols.dtype, like=cols)
    args = (cols, kh, kw, sy, sx, ph, pw, dy, dx, channel_major, x)
    if path == CUDA:
        from gpugrad.kernels import conv_cuda

        conv_cuda.col2im(*args, device)
    else:
        run_cpu_twin(_col2im_cpu, cols.size, *args)
    return x


# ----------------------------------------------------------------------------- conv2d's layout moves
# conv2d's GEMM gives its output channel-major, (C, N, H, W), and its gradients read gy as
# NHWC rows. NumPy does these transposing copies on one thread with a strided inner loop; the
# twins below run on all threads with a contiguous inner loop. Measured on the bench machine
# (float32): (32, 64, 28, 28) to NCHW with the bias 0.31 ms against 1.41 for np.add into a
# transposed view; NCHW to NHWC of (64, 32, 28, 28) 0.44 against 0.68 (but NumPy wins with one
# or two images: 0.07 against 0.14 ms for (1, 64, 56, 56)). On CUDA they are CuPy's own
# transposing copies (the references), already one fused pass.


def to_nchw_reference(y, bias=None):
    """(C, N, H, W) -> a C-contiguous (N, C, H, W), plus bias[c] when given."""
    out = y.transpose(1, 0, 2, 3).copy()  # a C-ordered copy, never y itself
    if bias is not None:
        out += bias.reshape(1, -1, 1, 1)
    return out


def to_nhwc_reference(x):
    """(N, C, H, W) -> a C-contiguous (N, H, W, C)."""
    return backend.array_module(x).ascontiguousarray(x.transpose(0, 2, 3, 1))


@njit(parallel=True, cache=True)
def _to_nchw_cpu(src, bias, has_bias, dst):
    n_ch, n_img, hw = src.shape
    for p in prange(n_img * n_ch):
        i = p // n_ch
        c = p % n_ch
        if has_bias:
            b = bias[c]
            for j in range(hw):
                dst[i, c, j] = src[c, i, j] + b
        else:
            for j in range(hw):
                dst[i, c, j] = src[c, i, j]


@njit(parallel=True, cache=True)
def _to_nhwc_cpu(src, dst):
    n_img, n_ch, hw = src.shape
    # Parallel over images: splitting finer (per pixel or per block of pixels) measured slower
    # on the LeNet shapes; with fewer images than threads the dispatcher uses NumPy instead.
    for i in prange(n_img):
        for j in range(hw):
            for c in range(n_ch):
                dst[i, j, c] = src[i, c, j]


def to_nchw(y, bias=None, device="cpu"):
    """conv2d's channel-major output (C, N, H, W) as (N, C, H, W), adding bias[c] if given."""
    op = "to_nchw"
    path = choose_path(op, device, y) if bias is None else choose_path(op, device, y, bias)
    check_float_array(op, "y", y, ndim=4)
    if bias is not None:
        check_float_array(op, "bias", bias, shape=(y.shape[0],))
        check_same_dtype(op, "bias", bias, y.dtype)
    if path != CPU:
        return to_nchw_reference(y, bias)
    c, n, h, w = y.shape
    src = np.ascontiguousarray(y).reshape(c, n, h * w)
    out = backend.empty((n, c, h, w), y.dtype, like=y)
    has_bias = bias is not None
    b = np.ascontiguousarray(bias) if has_bias else np.zeros(1, y.dtype)
    run_cpu_twin(_to_nchw_cpu, y.size, src, b, has_bias, out.reshape(n, c, h * w))
    return out


def to_nhwc(x, device="cpu"):
    """(N, C, H, W) as a C-contiguous (N, H, W, C): conv2d's gradient, a row per pixel."""
    op = "to_nhwc"
    path = choose_path(op, device, x)
    check_float_array(op, "x", x, ndim=4)
    if path != CPU or x.shape[0] < numba.get_num_threads():
        return to_nhwc_reference(x)
    n, c, h, w = x.shape
    src = np.ascontiguousarray(x).reshape(n, c, h * w)
    out = backend.empty((n, h, w, c), x.dtype, like=x)
    run_cpu_twin(_to_nhwc_cpu, x.size, src, out.reshape(n, h * w, c))
    return out


def __getattr__(name):
    # The CUDA kernels are built on first access so that importing this module does not import
    # numba.cuda (about 0.25 s).
    if name in ("im2col_kernel", "col2im_kernel"):
        from gpugrad.kernels import conv_cuda

        return getattr(conv_cuda, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ----------------------------------------------------------------------------- argument checks


def _check_layout(op, layout):
    """True for the channel-major layout."""
    if layout not in LAYOUTS:
        raise ValueError(f"{op}: layout must be one of {LAYOUTS}, got {layout!r}")
    return layout == "channel"


# Every geometry value (kernel size, stride, padding, dilation, image size, groups) is a Python
# or NumPy integer, never a bool, float or str: PyTorch raises TypeError for those, where int()
# would run stride 2.9 as 2 and stride '21' as (2, 1). It must also fit in int64, the type the
# kernels index with: Numba types a larger Python int as uint64, and the mixed arithmetic wraps
# (all-zero columns at stride 2**63) or fails to compile (from 2**64).

INT64_MAX = 2**63 - 1


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_int(op, what, value, minimum):
    """`value` as a Python int in [minimum, INT64_MAX]."""
    if not _is_int(value):
        raise TypeError(f"{op}: {what} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{op}: {what} must be >= {minimum}, got {int(value)}")
    if value > INT64_MAX:
        raise ValueError(f"{op}: {what} must fit in int64 (at most 2**63 - 1), got {int(value)}")
    return int(value)


def _check_positive_ints(op, what, pair, minimum=1):
    """An int or a pair of ints as (h, w) Python ints, each in [minimum, INT64_MAX]."""
    if _is_int(pair):
        pair = (pair, pair)
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise TypeError(f"{op}: {what} must be an int or a pair of ints (h, w), got "
                        f"{type(pair).__name__} {pair!r}")
    for v in pair:
        if not _is_int(v):
            raise TypeError(f"{op}: {what} must be an int or a pair of ints (h, w), got "
                            f"{type(v).__name__} {v!r} in {pair!r}")
    h, w = int(pair[0]), int(pair[1])
    if h < minimum or w < minimum:
        raise ValueError(f"{op}: {what} must be >= {minimum}, got {(h, w)}")
    if h > INT64_MAX or w > INT64_MAX:
        raise ValueError(f"{op}: {what} must fit in int64 (at most 2**63 - 1), got {(h, w)}")
    return h, w


def _check_geometry(op, kernel_size, stride, padding, dilation):
    return (
        _check_positive_ints(op, "kernel_size", kernel_size),
        _check_positive_ints(op, "stride", stride),
        _check_positive_ints(op, "padding", padding, minimum=0),
        _check_positive_ints(op, "dilation", dilation),
    )


def _axis_output_size(op, axis, n, k, s, p, d):
    """Output length along one axis of a checked geometry, after checking that the padded
    input fits in int64 (so does every tap index, which lies inside it) and that the dilated
    kernel fits in the padded input."""
    where = "" if axis is None else f" along {axis}"
    padded = n + 2 * p
    if padded > INT64_MAX:
        raise ValueError(
            f"{op}: padding {p}{where} makes the padded input {padded} long (input {n}), "
            "more than int64 can index (2**63 - 1)"
        )
    span = d * (k - 1) + 1
    if span > padded:
        raise ValueError(
            f"{op}: kernel size {span} (kernel {k}, dilation {d}) is larger than the padded "
            f"input {padded}{where} (input {n}, padding {p})"
        )
    return (padded - span) // s + 1


def _check_output_size(op, h, w, geometry):
    """(out_h, out_w) of an (h, w) image under a geometry from _check_geometry."""
    (kh, kw), (sy, sx), (ph, pw), (dy, dx) = geometry
    return (_axis_output_size(op, "H", h, kh, sy, ph, dy),
            _axis_output_size(op, "W", w, kw, sx, pw, dx))


def _check_pad_value(op, pad_value, dtype):
    """pad_value as a scalar of `dtype`: a real number (not bool, None, str or an array)."""
    if isinstance(pad_value, bool) or not isinstance(
        pad_value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"{op}: pad_value must be a real number, got "
                        f"{type(pad_value).__name__} {pad_value!r}")
    try:
        return dtype.type(pad_value)
    except OverflowError:
        raise ValueError(f"{op}: pad_value {pad_value} does not fit in {dtype}") from None


def _format_bytes(nbytes):
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if nbytes < 1024 or unit == "PiB":
            break
        nbytes /= 1024
    return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"


def _check_nbytes(op, what, shape, dtype):
    """The size in bytes of an array of `shape`, after checking that an array can be that
    large (NumPy would say only "Maximum allowed dimension exceeded")."""
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    if nbytes > INT64_MAX:
        raise ValueError(
            f"{op}: the {what} would have shape {shape} ({dtype}), {nbytes} bytes, more than "
            "an array can hold; check the kernel size, stride, padding and dilation"
        )
    return nbytes


def _out_of_memory(op, what, shape, dtype, error):
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    return MemoryError(f"{op}: cannot allocate the {what}, shape {shape} ({dtype}, "
                       f"{_format_bytes(nbytes)}): {error}")


def _empty(op, what, shape, dtype, like):
    """backend.empty, with errors that name the op and the shape when the array cannot be made."""
    _check_nbytes(op, what, shape, dtype)
    try:
        return backend.empty(shape, dtype, like=like)
    except MemoryError as e:
        raise _out_of_memory(op, what, shape, dtype, e) from e
