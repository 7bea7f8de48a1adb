"""Winograd F(2x2, 3x3) convolution passes on the CPU, a few images at a time.

Done over the whole batch, every step of a Winograd pass (input transform, 16 GEMMs, output
transform) reads and writes a tile array of 16 x channels x tiles numbers: 6-13 MB each for a
64 x 32 x 14 x 14 batch, far past the L2 cache, so each step streams from memory. The pass then
moves ~100 MB and runs at the memory's speed (bench/results/cpu-xeon: 11 GB/s transforms).
Here a pass walks blocks of a few images instead; a block's V and M (or dM and dV) are sized
to stay in a core's L2 cache between the transform that writes them and the GEMM that reads
them. Each worker thread takes a contiguous run of blocks, calls the transforms' plane cores
(kernels/conv_winograd.py, compiled nogil) and a one-thread BLAS GEMM per block:
host_blas.run_parts splits the work once per pass.

    forward      per block: V = B^T x B, M = U @ V, y = A^T M A (+ b)
    input_grad   per block: dM = A gy A^T, dV = U^T @ dM, gx = B dV B^T
    weight_grad  per block: dM, V as above, dU_block = dM @ V^T; gw = G^T (sum of dU_block) G
    grads        input_grad and weight_grad from one dM per block

Blocks depend on the batch only, never on the thread count, and the weight gradient sums its
per-block dU in block order, so every result is the same on any number of threads. The numbers
are those of the whole-batch passes (kernels.conv_winograd's dispatchers) up to the order of
the float additions in the weight gradient's sum over tiles.
"""

from __future__ import annotations

import numpy as np

from gpugrad import backend, host_blas
from gpugrad.kernels import conv_winograd as wino
from gpugrad.kernels.checks import check_float_array, check_same_dtype

# A block's two tile arrays together: about half of the 2 MiB L2 of the bench machine's cores,
# leaving room for the filters, the input and output block and BLAS's packed panels.
BLOCK_BYTES = 1 << 20
# Passes are cut into at least this many blocks (when the batch has that many images), so
# that up to this many threads get work, whatever the machine.
MIN_BLOCKS = 8


def block_bounds(n_img: int, per_image_bytes: int) -> list[tuple[int, int]]:
    """[(first image, end), ...]: the blocks of a pass over n_img images."""
    size = max(1, min(BLOCK_BYTES // max(per_image_bytes, 1), n_img // MIN_BLOCKS))
    return [(s, min(s + size, n_img)) for s in range(0, n_img, size)]


def _parts(n_blocks):
    """Block indices 0..n_blocks-1, cut into one contiguous run per worker thread."""
    parts = min(host_blas.worker_count(), n_blocks)
    return [range(n_blocks * i // parts, n_blocks * (i + 1) // parts) for i in range(parts)]


def _run(part, n_blocks):
    """part(block indices) for each worker's run of blocks, on the worker threads."""
    runs = _parts(n_blocks)
    host_blas.run_parts(lambda i: part(runs[i]), len(runs))


class _Geometry:
    """Sizes shared by a pass: images, channels, tiles, padding, groups."""

    def __init__(self, n_img, channels, filters, in_hw, out_hw, padding, groups, dtype):
        self.n_img, self.channels, self.filters = n_img, channels, filters
        self.in_hw, self.out_hw, self.padding, self.groups = in_hw, out_hw, padding, groups
        self.th, self.tw = wino.tile_counts(*out_hw)
        self.tiles = self.th * self.tw  # per image
        self.dtype = np.dtype(dtype)
        per_image = wino.POSITIONS * (channels + filters) * self.tiles * self.dtype.itemsize
        self.blocks = block_bounds(n_img, per_image)

    def buffer(self, channels):
        """A flat buffer that holds a tile array of `channels` for the largest block."""
        most = max(e - s for s, e in self.blocks) * self.tiles
        return np.empty(wino.POSITIONS * wino.plane_stride(channels, most, self.dtype),
                        self.dtype)

    def tile_arrays(self, flat, channels, n_block):
        """(tile array (16, channels, tiles), its plane rows for the twins) on `flat`."""
        a = wino.tile_view(flat, channels, n_block * self.tiles)
        return a, wino._plane_rows(a, output=True)

    def grouped(self, a):
        """(16, channels, X) -> (16, groups, channels/groups, X): the GEMMs' batch dims."""
        return a.reshape(a.shape[0], self.groups, a.shape[1] // self.groups, a.shape[2])

    def input_canvas(self):
        return np.zeros((wino.TILE * self.th + 2, wino.TILE * self.tw + 2), self.dtype)

    def output_canvas(self):
        return np.zeros((wino.TILE * self.th, wino.TILE * self.tw), self.dtype)


def _filters(w, groups):
    """U = G w G^T as (16, groups, K/groups, C/groups)."""
    u = wino.filter_transform(w)
    return u.reshape(wino.POSITIONS, groups, u.shape[1] // groups, u.shape[2])


def _check(op, x_shape, w_shape, padding, groups):
    """padding and out_hw of a pass, checked (ops.conv has checked what users pass)."""
    if len(x_shape) != 4 or len(w_shape) != 4 or tuple(w_shape[2:]) != (3, 3):
        raise ValueError(f"{op}: expected a 4-D input and (K, C/groups, 3, 3) filters, got "
                         f"shapes {tuple(x_shape)} and {tuple(w_shape)}")
    if (not isinstance(groups, int) or groups < 1 or x_shape[1] != w_shape[1] * groups
            or w_shape[0] % groups):
        raise ValueError(f"{op}: input {tuple(x_shape)} and weight {tuple(w_shape)} do not "
                         f"fit groups={groups!r}")
    padding = wino._check_pair(op, "padding", padding, 0)
    out_hw = (x_shape[2] + 2 * padding[0] - 2, x_shape[3] + 2 * padding[1] - 2)
    if min(out_hw) < 1:
        raise ValueError(f"{op}: a {x_shape[2]}x{x_shape[3]} input with padding {padding} is "
                         "smaller than the 3x3 filter")
    return padding, out_hw


def _check_arrays(op, **arrays):
    """NumPy float arrays of one dtype, the first's."""
    dtype = None
    for name, a in arrays.items():
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{op}: runs on the CPU only; {name} is a {type(a).__name__}, "
                            "not a NumPy array")
        check_float_array(op, name, a)
        dtype = a.dtype if dtype is None else dtype
        check_same_dtype(op, name, a, dtype)


def forward(x, w, bias=None, padding=(0, 0), groups=1):
    """y = conv2d(x, w, bias, padding=padding, groups=groups), 3x3 stride 1, NCHW, on NumPy."""
    op = "winograd forward"
    _check_arrays(op, x=x, w=w)
    padding, out_hw = _check(op, x.shape, w.shape, padding, groups)
    if bias is not None:
        check_float_array(op, "bias", bias, shape=(w.shape[0],))
        check_same_dtype(op, "bias", bias, x.dtype)
    n, c = x.shape[:2]
    k = w.shape[0]
    geo = _Geometry(n, c, k, x.shape[2:], out_hw, padding, groups, x.dtype)
    x = np.ascontiguousarray(x)
    b = np.zeros(k, x.dtype) if bias is None else np.ascontiguousarray(bias)
    u = _filters(w, groups)
    y = backend.empty((n, k, *out_hw), x.dtype, like=x)  # cached pages: no page faults

    def part(indices):
        v_flat, m_flat = geo.buffer(c), geo.buffer(k)
        canvas_in, canvas_out = geo.input_canvas(), geo.output_canvas()
        for s, e in (geo.blocks[i] for i in indices):
            v, v_rows = geo.tile_arrays(v_flat, c, e - s)
            m, m_rows = geo.tile_arrays(m_flat, k, e - s)
            wino._input_transform_planes(x[s:e], *padding, geo.th, geo.tw, 0, (e - s) * c,
                                         canvas_in, v_rows)
            np.matmul(u, geo.grouped(v), out=geo.grouped(m))
            wino._output_transform_planes(m_rows, b, geo.th, geo.tw, 0, (e - s) * k,
                                          canvas_out, y[s:e])

    _run(part, len(geo.blocks))
    return y


def _backward(x, gy, w, x_shape, w_shape, padding, groups, op):
    """(gx, gw) from one dM per block: gx when w is given, gw when x is."""
    _check_arrays(op, **{name: a for name, a in (("gy", gy), ("x", x), ("w", w))
                         if a is not None})
    padding, out_hw = _check(op, x_shape, w_shape, padding, groups)
    n, c = x_shape[:2]
    k = w_shape[0]
    if tuple(gy.shape) != (n, k, *out_hw):
        raise ValueError(f"{op}: expected gy of shape {(n, k, *out_hw)}, got {tuple(gy.shape)}")
    geo = _Geometry(n, c, k, x_shape[2:], out_hw, padding, groups, gy.dtype)
    gy = np.ascontiguousarray(gy)
    gx = u_t = du_blocks = None
    if w is not None:
        gx = backend.empty(x_shape, gy.dtype, like=gy)
        u_t = _filters(w, groups).transpose(0, 1, 3, 2)
    if x is not None:
        x = np.ascontiguousarray(x)
        # One dU per block, summed in block order after the pass: the same on any thread count.
        du_blocks = np.empty((len(geo.blocks), wino.POSITIONS, groups, k // groups,
                              c // groups), gy.dtype)

    def part(indices):
        dm_flat, cv_flat = geo.buffer(k), geo.buffer(c)  # cv: dV, then V
        canvas_gy, canvas_gx, canvas_x = geo.output_canvas(), geo.input_canvas(), \
            geo.input_canvas()
        for i in indices:
            s, e = geo.blocks[i]
            dm, dm_rows = geo.tile_arrays(dm_flat, k, e - s)
            cv, cv_rows = geo.tile_arrays(cv_flat, c, e - s)
            wino._gy_transform_planes(gy[s:e], geo.th, geo.tw, 0, (e - s) * k, canvas_gy,
                                      dm_rows)
            if gx is not None:
                np.matmul(u_t, geo.grouped(dm), out=geo.grouped(cv))
                wino._input_grad_transform_planes(cv_rows, *padding, geo.th, geo.tw, 0,
                                                  (e - s) * c, canvas_gx, gx[s:e])
            if du_blocks is not None:
                wino._input_transform_planes(x[s:e], *padding, geo.th, geo.tw, 0, (e - s) * c,
                                             canvas_x, cv_rows)
                np.matmul(geo.grouped(dm), geo.grouped(cv).transpose(0, 1, 3, 2),
                          out=du_blocks[i])

    _run(part, len(geo.blocks))
    gw = None
    if du_blocks is not None:
        du = du_blocks.sum(axis=0).reshape(wino.POSITIONS, k, c // groups)
        gw = wino.filter_grad_transform(du)
    return gx, gw


def input_grad(gy, w, x_shape, padding=(0, 0), groups=1):
    """gx: conv2d's gradient in x, for output gradient gy and an input of shape x_shape."""
    return _backward(None, gy, w, tuple(x_shape), w.shape, padding, groups,
                     "winograd input_grad")[0]


def weight_grad(x, gy, w_shape, padding=(0, 0), groups=1):
    """gw: conv2d's gradient in w, for input x and output gradient gy."""
    return _backward(x, gy, None, x.shape, tuple(w_shape), padding, groups,
                     "winograd weight_grad")[1]


def grads(x, gy, w, padding=(0, 0), groups=1):
    """(gx, gw) together: each block's dM is made once and read by both."""
    return _backward(x, gy, w, x.shape, w.shape, padding, groups, "winograd grads")
