"""Winograd F(2x2, 3x3) transforms for 3x3, stride-1 convolutions: NumPy reference, CPU twin,
dispatcher for each.

A 3x3 convolution computes each 2x2 block of outputs (a *tile*) from the 4x4 input patch under
it. Winograd's minimal filtering algorithm does that with 16 multiplies instead of 36:
    y_tile = A^T [ (G g G^T) * (B^T d B) ] A          (* elementwise, 4x4)
with g the 3x3 filter, d the 4x4 patch and constant matrices
    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]
(Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016). Summed over input
channels, the 16 elementwise products become 16 GEMMs, one per position xi of the 4x4 tile:
    M[xi] = U[xi] @ V[xi],  U = G g G^T as (16, K, C),  V = B^T d B as (16, C, tiles)
which is 2.25x fewer multiply-adds than im2col's one GEMM. The gradients are the adjoints of
the same linear maps, so they need no other algorithm:
    dM = A gy A^T per tile,  dV = U^T @ dM,  dU = dM @ V^T,
    gx = B dV B^T summed over the overlapping patches,  gw = G^T dU G.
Tiles are numbered t = (n * tiles_h + ty) * tiles_w + tx; tile (ty, tx) covers the outputs
(2ty + i, 2tx + j) and reads the input rows 2ty - pad_h + i, i < 4, and columns likewise, zero
where that falls outside the image. A last tile that hangs over an odd-sized output computes
outputs that nobody keeps, and its gradient there is zero.

The transforms only move and add numbers (x1/2 in G is exact), so a float32 Winograd convolution
stays within a few float32 roundings of the direct sum (tests/kernels/test_conv_winograd.py).
There are no CUDA kernels: on the GPU conv2d uses im2col + cuBLAS, and the dispatchers run the
references there.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from gpugrad import backend
from gpugrad.kernels._launch import CPU, choose_path, run_cpu_twin
from gpugrad.kernels.checks import check_float_array, check_same_dtype

TILE = 2  # outputs per tile side: F(2x2, 3x3)
PATCH = 4  # inputs per patch side
POSITIONS = PATCH * PATCH  # the 16 GEMMs

_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)


def tile_counts(out_h: int, out_w: int) -> tuple[int, int]:
    """Tiles per column and per row: ceil(out / 2)."""
    return -(-out_h // TILE), -(-out_w // TILE)


# Cache lines of 64 bytes; an L1 cache set is picked by address bits 6-11 (64 sets).
_LINE_BYTES = 64
_SETS = 64


def tile_array(channels: int, n_tiles: int, dtype, like):
    """An uninitialised (16, channels, n_tiles) array for V, M, dM or dV.

    The twins read or write all 16 positions of a tile at once: 16 streams, one per plane. When
    a plane's size is a multiple of 4 KiB (64 channels x 3136 tiles is), the 16 streams fall
    in the same L1 cache sets and evict each other: the transforms ran 3-7x slower on the
    bench machine. On the CPU the planes are therefore spaced by an odd number of cache lines
    (a few bytes of padding), which puts the 16 streams in 16 different sets; BLAS reads and
    writes such a strided batch directly. Elsewhere: a plain contiguous array."""
    shape = (POSITIONS, channels, n_tiles)
    if backend.array_module(like) is not np:
        return backend.empty(shape, dtype, like=like)
    itemsize = np.dtype(dtype).itemsize
    per_line = _LINE_BYTES // itemsize
    lines = -(-channels * n_tiles // per_line)
    lines += 1 - lines % 2  # odd
    flat = backend.empty((POSITIONS, lines * per_line), dtype, like=like)
    return flat[:, :channels * n_tiles].reshape(shape)


def _matrix(m, like):
    xp = backend.array_module(like)
    return xp.asarray(m, dtype=like.dtype)


# ----------------------------------------------------------------------------- references
# Plain NumPy (or CuPy) with the matrices written out: the oracle for the twins below.


def filter_transform_reference(w):
    """(K, C, 3, 3) filters -> U = G g G^T as (16, K, C)."""
    xp = backend.array_module(w)
    g = _matrix(_G, w)
    u = xp.matmul(g, xp.matmul(w, g.T))  # (K, C, 4, 4); two small products beat an einsum
    return xp.ascontiguousarray(u.transpose(2, 3, 0, 1)).reshape(POSITIONS, *w.shape[:2])


def filter_grad_transform_reference(du):
    """dU (16, K, C) -> gw = G^T dU G as (K, C, 3, 3): the adjoint of filter_transform."""
    xp = backend.array_module(du)
    g = _matrix(_G, du)
    du = du.reshape(PATCH, PATCH, *du.shape[1:]).transpose(2, 3, 0, 1)  # (K, C, 4, 4)
    return xp.ascontiguousarray(xp.matmul(g.T, xp.matmul(du, g)))


def _patches(x, padding, tiles):
    """The 4x4 input patch of every tile, (N, C, tiles_h, tiles_w, 4, 4), zero-padded."""
    xp = backend.array_module(x)
    n, c, h, w = x.shape
    (ph, pw), (th, tw) = padding, tiles
    canvas = xp.zeros((n, c, TILE * th + 2, TILE * tw + 2), x.dtype)
    # Rows of x that land on the canvas (padding can exceed what the tiles read).
    rows = min(h, canvas.shape[2] - ph)
    cols = min(w, canvas.shape[3] - pw)
    canvas[:, :, ph:ph + rows, pw:pw + cols] = x[:, :, :rows, :cols]
    out = xp.empty((n, c, th, tw, PATCH, PATCH), x.dtype)
    for i in range(PATCH):
        for j in range(PATCH):
            out[..., i, j] = canvas[:, :, i:i + TILE * th:TILE, j:j + TILE * tw:TILE]
    return out


def input_transform_reference(x, padding, tiles):
    """x (N, C, H, W) -> V = B^T d B for every patch d, as (16, C, N*tiles)."""
    xp = backend.array_module(x)
    bt = _matrix(_BT, x)
    v = xp.einsum("ai,nctsij,bj->abcnts", bt, _patches(x, padding, tiles), bt)
    return xp.ascontiguousarray(v.reshape(POSITIONS, x.shape[1], -1))


def output_transform_reference(m, bias, n_img, out_hw):
    """M (16, K, N*tiles) -> y = A^T M A per tile, (N, K, out_h, out_w), plus bias[k] if given."""
    xp = backend.array_module(m)
    th, tw = tile_counts(*out_hw)
    at = _matrix(_AT, m)
    m = m.reshape(PATCH, PATCH, m.shape[1], n_img, th, tw)
    y = xp.einsum("ia,abknts,jb->kntisj", at, m, at)  # (K, N, th, 2, tw, 2)
    y = y.reshape(m.shape[2], n_img, TILE * th, TILE * tw)[:, :, :out_hw[0], :out_hw[1]]
    y = xp.ascontiguousarray(y.transpose(1, 0, 2, 3))
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)
    return y


def gy_transform_reference(gy):
    """gy (N, K, out_h, out_w) -> dM = A gy A^T per tile, (16, K, N*tiles): the adjoint of
    output_transform (outputs past the edge get zero gradient)."""
    xp = backend.array_module(gy)
    n, k, oh, ow = gy.shape
    th, tw = tile_counts(oh, ow)
    padded = xp.zeros((n, k, TILE * th, TILE * tw), gy.dtype)
    padded[:, :, :oh, :ow] = gy
    at = _matrix(_AT, gy)
    tiles = padded.reshape(n, k, th, TILE, tw, TILE)
    dm = xp.einsum("ia,nktisj,jb->abknts", at, tiles, at)
    return xp.ascontiguousarray(dm.reshape(POSITIONS, k, -1))


def input_grad_transform_reference(dv, n_img, in_hw, padding, tiles):
    """dV (16, C, N*tiles) -> gx (N, C, H, W): B dV B^T per patch, summed where patches overlap;
    the adjoint of input_transform."""
    xp = backend.array_module(dv)
    (h, w), (ph, pw), (th, tw) = in_hw, padding, tiles
    c = dv.shape[1]
    bt = _matrix(_BT, dv)
    dv = dv.reshape(PATCH, PATCH, c, n_img, th, tw)
    dd = xp.einsum("ai,abcnts,bj->nctsij", bt, dv, bt)
    canvas = xp.zeros((n_img, c, max(TILE * th + 2, ph + h), max(TILE * tw + 2, pw + w)),
                      dv.dtype)
    for i in range(PATCH):
        for j in range(PATCH):
            canvas[:, :, i:i + TILE * th:TILE, j:j + TILE * tw:TILE] += dd[..., i, j]
    return xp.ascontiguousarray(canvas[:, :, ph:ph + h, pw:pw + w])


# ----------------------------------------------------------------------------- CPU twins
# Work items are (image, channel) planes, numbered channel-major (p = c * N + n) so that
# consecutive planes sit next to each other in the tile arrays (long streams, which the hardware
# prefetches: the output transform 2.46 -> 1.72 ms, the gy transform 2.01 -> 1.67 against
# image-major order), split into n_chunks contiguous runs, one prange step each. A step keeps a small zero-bordered canvas of its plane (about 1 KiB: in L1), so the tile
# loops read and write it without bounds checks, and edge tiles cost what inner tiles cost.
# Tile arrays arrive as their (16, plane stride) rows (see _plane_rows) and are indexed
# [xi, channel * n_tiles + t]: a unit inner stride Numba can see. Each plane is written by one
# thread, so input_grad's overlapping patches add up in a fixed order: no atomics, and the
# result does not depend on the thread count.


@njit(cache=True, inline="always")
def _chunk(i, n_chunks, planes):
    return i * planes // n_chunks, (i + 1) * planes // n_chunks


@njit(cache=True, inline="always")
def _bt(d0, d1, d2, d3):
    """B^T applied to 4 numbers along a row or a column of a patch."""
    return d0 - d2, d1 + d2, d2 - d1, d1 - d3


@njit(parallel=True, cache=True)
def _input_transform_cpu(x, ph, pw, th, tw, n_chunks, v):
    n_img, n_ch, h, w = x.shape
    n_tiles = n_img * th * tw
    for i in prange(n_chunks):
        canvas = np.zeros((TILE * th + 2, TILE * tw + 2), x.dtype)  # the border stays zero
        lo, hi = _chunk(i, n_chunks, n_img * n_ch)
        for p in range(lo, hi):
            n = p % n_img
            c = p // n_img
            for r in range(h):  # the dispatcher checked that the image fits the canvas
                for q in range(w):
                    canvas[ph + r, pw + q] = x[n, c, r, q]
            first = c * n_tiles + n * th * tw
            for ty in range(th):
                d0 = canvas[TILE * ty]
                d1 = canvas[TILE * ty + 1]
                d2 = canvas[TILE * ty + 2]
                d3 = canvas[TILE * ty + 3]
                for tx in range(tw):
                    q = TILE * tx
                    t = first + ty * tw + tx
                    # B^T along each of the patch's 4 rows ...
                    a0, a1, a2, a3 = _bt(d0[q], d0[q + 1], d0[q + 2], d0[q + 3])
                    b0, b1, b2, b3 = _bt(d1[q], d1[q + 1], d1[q + 2], d1[q + 3])
                    c0, c1, c2, c3 = _bt(d2[q], d2[q + 1], d2[q + 2], d2[q + 3])
                    e0, e1, e2, e3 = _bt(d3[q], d3[q + 1], d3[q + 2], d3[q + 3])
                    # ... then down each column: V[4a + b] = (B^T rows)[a][b].
                    v[0, t], v[4, t], v[8, t], v[12, t] = _bt(a0, b0, c0, e0)
                    v[1, t], v[5, t], v[9, t], v[13, t] = _bt(a1, b1, c1, e1)
                    v[2, t], v[6, t], v[10, t], v[14, t] = _bt(a2, b2, c2, e2)
                    v[3, t], v[7, t], v[11, t], v[15, t] = _bt(a3, b3, c3, e3)


@njit(cache=True, inline="always")
def _at(m0, m1, m2, m3):
    """A^T applied to 4 numbers: 2."""
    return m0 + m1 + m2, m1 - m2 - m3


@njit(parallel=True, cache=True)
def _output_transform_cpu(m, bias, th, tw, n_chunks, y):
    n_img, n_k, oh, ow = y.shape
    n_tiles = n_img * th * tw
    for i in prange(n_chunks):
        canvas = np.empty((TILE * th, TILE * tw), y.dtype)
        lo, hi = _chunk(i, n_chunks, n_img * n_k)
        for p in range(lo, hi):
            n = p % n_img
            k = p // n_img
            first = k * n_tiles + n * th * tw
            for ty in range(th):
                top = canvas[TILE * ty]
                bottom = canvas[TILE * ty + 1]
                for tx in range(tw):
                    t = first + ty * tw + tx
                    # A^T along the tile's 4 rows, then down the 2 resulting columns.
                    r00, r01 = _at(m[0, t], m[1, t], m[2, t], m[3, t])
                    r10, r11 = _at(m[4, t], m[5, t], m[6, t], m[7, t])
                    r20, r21 = _at(m[8, t], m[9, t], m[10, t], m[11, t])
                    r30, r31 = _at(m[12, t], m[13, t], m[14, t], m[15, t])
                    top[TILE * tx], bottom[TILE * tx] = _at(r00, r10, r20, r30)
                    top[TILE * tx + 1], bottom[TILE * tx + 1] = _at(r01, r11, r21, r31)
            b = bias[k]
            for r in range(oh):
                for q in range(ow):
                    y[n, k, r, q] = canvas[r, q] + b


@njit(cache=True, inline="always")
def _a(g0, g1):
    """A applied to 2 numbers: 4 (the transpose of _at)."""
    return g0, g0 + g1, g0 - g1, -g1


@njit(parallel=True, cache=True)
def _gy_transform_cpu(gy, th, tw, n_chunks, dm):
    n_img, n_k, oh, ow = gy.shape
    n_tiles = n_img * th * tw
    for i in prange(n_chunks):
        canvas = np.zeros((TILE * th, TILE * tw), gy.dtype)  # past an odd edge: zero
        lo, hi = _chunk(i, n_chunks, n_img * n_k)
        for p in range(lo, hi):
            n = p % n_img
            k = p // n_img
            for r in range(oh):
                for q in range(ow):
                    canvas[r, q] = gy[n, k, r, q]
            first = k * n_tiles + n * th * tw
            for ty in range(th):
                top = canvas[TILE * ty]
                bottom = canvas[TILE * ty + 1]
                for tx in range(tw):
                    t = first + ty * tw + tx
                    # A down the tile's 2 columns, then along the 4 resulting rows.
                    a0, a1, a2, a3 = _a(top[TILE * tx], bottom[TILE * tx])
                    b0, b1, b2, b3 = _a(top[TILE * tx + 1], bottom[TILE * tx + 1])
                    dm[0, t], dm[1, t], dm[2, t], dm[3, t] = _a(a0, b0)
                    dm[4, t], dm[5, t], dm[6, t], dm[7, t] = _a(a1, b1)
                    dm[8, t], dm[9, t], dm[10, t], dm[11, t] = _a(a2, b2)
                    dm[12, t], dm[13, t], dm[14, t], dm[15, t] = _a(a3, b3)


@njit(cache=True, inline="always")
def _b(v0, v1, v2, v3):
    """B applied to 4 numbers (the transpose of _bt)."""
    return v0, v1 - v2 + v3, v1 + v2 - v0, -v3


@njit(parallel=True, cache=True)
def _input_grad_transform_cpu(dv, ph, pw, th, tw, n_chunks, gx):
    n_img, n_ch, h, w = gx.shape
    n_tiles = n_img * th * tw
    for i in prange(n_chunks):
        canvas = np.empty((TILE * th + 2, TILE * tw + 2), gx.dtype)
        lo, hi = _chunk(i, n_chunks, n_img * n_ch)
        for p in range(lo, hi):
            n = p % n_img
            c = p // n_img
            canvas[:] = 0
            first = c * n_tiles + n * th * tw
            for ty in range(th):
                d0 = canvas[TILE * ty]
                d1 = canvas[TILE * ty + 1]
                d2 = canvas[TILE * ty + 2]
                d3 = canvas[TILE * ty + 3]
                for tx in range(tw):
                    q = TILE * tx
                    t = first + ty * tw + tx
                    # B along each of the 4 rows of the tile of dV ...
                    a0, a1, a2, a3 = _b(dv[0, t], dv[1, t], dv[2, t], dv[3, t])
                    b0, b1, b2, b3 = _b(dv[4, t], dv[5, t], dv[6, t], dv[7, t])
                    c0, c1, c2, c3 = _b(dv[8, t], dv[9, t], dv[10, t], dv[11, t])
                    e0, e1, e2, e3 = _b(dv[12, t], dv[13, t], dv[14, t], dv[15, t])
                    # ... then down each column, added onto the patch (patches overlap).
                    s0, s1, s2, s3 = _b(a0, b0, c0, e0)
                    d0[q] += s0
                    d1[q] += s1
                    d2[q] += s2
                    d3[q] += s3
                    s0, s1, s2, s3 = _b(a1, b1, c1, e1)
                    d0[q + 1] += s0
                    d1[q + 1] += s1
                    d2[q + 1] += s2
                    d3[q + 1] += s3
                    s0, s1, s2, s3 = _b(a2, b2, c2, e2)
                    d0[q + 2] += s0
                    d1[q + 2] += s1
                    d2[q + 2] += s2
                    d3[q + 2] += s3
                    s0, s1, s2, s3 = _b(a3, b3, c3, e3)
                    d0[q + 3] += s0
                    d1[q + 3] += s1
                    d2[q + 3] += s2
                    d3[q + 3] += s3
            for r in range(h):
                for q in range(w):
                    gx[n, c, r, q] = canvas[ph + r, pw + q]


# U[4a + b] = sum over i, j of G[a, i] G[b, j] w[i, j]: one row of kron(G, G) per position.
_KRON_G = np.kron(_G, _G)  # (16, 9); entries 0, +-1/4, +-1/2, 1: exact in any float


def _filter_transform_cpu(w, u):
    """U = kron(G, G) @ w as one (16 x 9) @ (9 x K*C) GEMM into u (16, K, C): 5x faster than a
    Numba loop over the filters (36 against 174 us for 64 x 32 filters), whose 16 stores per
    filter go to 16 planes; the same float32 error against a float64 reference."""
    np.matmul(_KRON_G.astype(w.dtype), w.reshape(-1, 9).T, out=u.reshape(POSITIONS, -1))


@njit(cache=True, inline="always")
def _gt_row(a0, a1, a2, a3, half):
    """G^T applied to 4 numbers: (a0 + (a1 + a2)/2, (a1 - a2)/2, (a1 + a2)/2 + a3)."""
    return a0 + (a1 + a2) * half, (a1 - a2) * half, (a1 + a2) * half + a3


@njit(cache=True)
def _filter_grad_transform_cpu(du, half, gw):
    n_k, n_ch = gw.shape[:2]
    for k in range(n_k):
        for c in range(n_ch):
            # G^T along each of dU's 4 rows (3 numbers each), then down the 3 columns.
            r00, r01, r02 = _gt_row(du[0, k, c], du[1, k, c], du[2, k, c], du[3, k, c], half)
            r10, r11, r12 = _gt_row(du[4, k, c], du[5, k, c], du[6, k, c], du[7, k, c], half)
            r20, r21, r22 = _gt_row(du[8, k, c], du[9, k, c], du[10, k, c], du[11, k, c], half)
            r30, r31, r32 = _gt_row(du[12, k, c], du[13, k, c], du[14, k, c], du[15, k, c],
                                    half)
            gw[k, c, 0, 0], gw[k, c, 1, 0], gw[k, c, 2, 0] = _gt_row(r00, r10, r20, r30, half)
            gw[k, c, 0, 1], gw[k, c, 1, 1], gw[k, c, 2, 1] = _gt_row(r01, r11, r21, r31, half)
            gw[k, c, 0, 2], gw[k, c, 1, 2], gw[k, c, 2, 2] = _gt_row(r02, r12, r22, r32, half)


# ----------------------------------------------------------------------------- dispatchers


def _check_pair(op, name, value, minimum):
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
        or any(v < minimum for v in value)
    ):
        raise ValueError(f"{op}: {name} must be a pair of ints >= {minimum}, got {value!r}")
    return int(value[0]), int(value[1])


def _check_geometry(op, in_hw, padding, out_hw):
    """padding and out_hw as checked pairs; out_hw must be what a 3x3 stride-1 conv gives."""
    in_hw = _check_pair(op, "image size", in_hw, 1)
    padding = _check_pair(op, "padding", padding, 0)
    out_hw = _check_pair(op, "out_hw", out_hw, 1)
    expected = (in_hw[0] + 2 * padding[0] - 2, in_hw[1] + 2 * padding[1] - 2)
    if out_hw != expected:
        raise ValueError(
            f"{op}: a {in_hw[0]}x{in_hw[1]} image with padding {padding} gives a "
            f"{expected[0]}x{expected[1]} output under a 3x3 stride-1 filter, got out_hw {out_hw}"
        )
    return in_hw, padding, out_hw


def _check_tiles(op, name, a, axis, expected):
    if a.ndim != 3 or a.shape[0] != POSITIONS or a.shape[2] != expected:
        raise ValueError(
            f"{op}: {name} must have shape (16, {axis}, {expected}) (16 tile positions, "
            f"{axis}, images x tiles), got {tuple(a.shape)}"
        )


def _plane_rows(a, output=False):
    """A (16, channels, n_tiles) array as the (16, plane stride) C-contiguous array over the
    same memory, for the twins (the padding tile_array leaves between planes is never read or
    written). An input in another layout is copied first; an output must be tile_array's."""
    size = a.itemsize
    plane = a.shape[1] * a.shape[2] * size
    if plane == 0:
        return np.empty((POSITIONS, 0), a.dtype)
    # a[0].flags ignores the strides of size-1 dimensions, which NumPy leaves arbitrary.
    fits = a.strides[0] % size == 0 and a.strides[0] >= plane and a[0].flags.c_contiguous
    if not fits:
        if output:
            raise AssertionError("winograd: an output array must come from tile_array")
        a = np.ascontiguousarray(a)
    stride = max(a.strides[0], plane)
    return np.lib.stride_tricks.as_strided(a, (POSITIONS, stride // size), (stride, size))


def _n_chunks(planes):
    # A few runs per thread evens out the load; more would only zero more canvases.
    return max(1, min(planes, 4 * numba.get_num_threads()))


def filter_transform(w, device="cpu"):
    """(K, C, 3, 3) filters -> U = G g G^T, (16, K, C)."""
    op = "winograd filter_transform"
    path = choose_path(op, device, w)
    check_float_array(op, "w", w, ndim=4)
    if w.shape[2:] != (3, 3):
        raise ValueError(f"{op}: expected 3x3 filters, got shape {tuple(w.shape)}")
    if path != CPU:
        return filter_transform_reference(w)
    u = np.empty((POSITIONS, *w.shape[:2]), w.dtype)
    _filter_transform_cpu(w, u)
    return u


def filter_grad_transform(du, device="cpu"):
    """dU (16, K, C) -> gw (K, C, 3, 3), the filter transform's adjoint."""
    op = "winograd filter_grad_transform"
    path = choose_path(op, device, du)
    check_float_array(op, "du", du, ndim=3)
    if du.shape[0] != POSITIONS:
        raise ValueError(f"{op}: du must have shape (16, K, C), got {tuple(du.shape)}")
    if path != CPU:
        return filter_grad_transform_reference(du)
    gw = np.empty((*du.shape[1:], 3, 3), du.dtype)
    _filter_grad_transform_cpu(du, du.dtype.type(0.5), gw)
    return gw


def input_transform(x, padding, out_hw, device="cpu"):
    """x (N, C, H, W) -> V (16, C, N*tiles) for a 3x3 stride-1 convolution with `padding` whose
    output is `out_hw`."""
    op = "winograd input_transform"
    path = choose_path(op, device, x)
    check_float_array(op, "x", x, ndim=4)
    _, padding, out_hw = _check_geometry(op, x.shape[2:], padding, out_hw)
    tiles = tile_counts(*out_hw)
    if path != CPU:
        return input_transform_reference(x, padding, tiles)
    n, c = x.shape[:2]
    x = np.ascontiguousarray(x)
    v = tile_array(c, n * tiles[0] * tiles[1], x.dtype, like=x)
    run_cpu_twin(_input_transform_cpu, v.size, x, *padding, *tiles, _n_chunks(n * c),
                 _plane_rows(v, output=True))
    return v


def output_transform(m, bias, n_img, out_hw, device="cpu"):
    """M (16, K, N*tiles) -> y (N, K, out_h, out_w), adding bias[k] when given."""
    op = "winograd output_transform"
    arrays = (m,) if bias is None else (m, bias)
    path = choose_path(op, device, *arrays)
    check_float_array(op, "m", m, ndim=3)
    out_hw = _check_pair(op, "out_hw", out_hw, 1)
    th, tw = tile_counts(*out_hw)
    _check_tiles(op, "m", m, "K", n_img * th * tw)
    k = m.shape[1]
    if bias is not None:
        check_float_array(op, "bias", bias, shape=(k,))
        check_same_dtype(op, "bias", bias, m.dtype)
    if path != CPU:
        return output_transform_reference(m, bias, n_img, out_hw)
    y = backend.empty((n_img, k, *out_hw), m.dtype, like=m)
    b = np.zeros(k, m.dtype) if bias is None else np.ascontiguousarray(bias)
    run_cpu_twin(_output_transform_cpu, m.size, _plane_rows(m), b, th, tw, _n_chunks(n_img * k),
                 y)
    return y


def gy_transform(gy, device="cpu"):
    """gy (N, K, out_h, out_w) -> dM (16, K, N*tiles), the output transform's adjoint."""
    op = "winograd gy_transform"
    path = choose_path(op, device, gy)
    check_float_array(op, "gy", gy, ndim=4)
    if path != CPU:
        return gy_transform_reference(gy)
    n, k, oh, ow = gy.shape
    th, tw = tile_counts(oh, ow)
    gy = np.ascontiguousarray(gy)
    dm = tile_array(k, n * th * tw, gy.dtype, like=gy)
    run_cpu_twin(_gy_transform_cpu, dm.size, gy, th, tw, _n_chunks(n * k),
                 _plane_rows(dm, output=True))
    return dm


def input_grad_transform(dv, n_img, in_hw, padding, out_hw, device="cpu"):
    """dV (16, C, N*tiles) -> gx (N, C, H, W), the input transform's adjoint."""
    op = "winograd input_grad_transform"
    path = choose_path(op, device, dv)
    check_float_array(op, "dv", dv, ndim=3)
    in_hw, padding, out_hw = _check_geometry(op, in_hw, padding, out_hw)
    tiles = tile_counts(*out_hw)
    _check_tiles(op, "dv", dv, "C", n_img * tiles[0] * tiles[1])
    if path != CPU:
        return input_grad_transform_reference(dv, n_img, in_hw, padding, tiles)
    c = dv.shape[1]
    gx = backend.empty((n_img, c, *in_hw), dv.dtype, like=dv)
    run_cpu_twin(_input_grad_transform_cpu, dv.size, _plane_rows(dv), *padding, *tiles,
                 _n_chunks(n_img * c), gx)
    return gx
