"""Winograd F(2x2, 3x3) convolution passes on the CPU, a few images at a time, channels last.

The whole-batch transforms (kernels/conv_winograd.py) work one (image, channel) plane at a
time: a 14x14 plane has 7 tiles per row, too few for SIMD, so they run one scalar tile at a
time (~35 cycles per tile and channel on the bench machine, about half of a Winograd conv2d).
Here a pass walks blocks of a few images. Each block is first copied channels-last into four
*phase* arrays, one per (row parity, column parity) of the zero-padded image:
    phase[rp, cp][n, R, Q, c] = padded image n, channel c, at row 2R + rp, column 2Q + cp
With that layout, input i, j of tile (ty, tx) is phase[i % 2, j % 2][n, ty + i // 2,
tx + j // 2, :], so for one tile row, the values of every tile and channel that one term of a
transform reads are one contiguous run of tiles_w * C numbers. Every transform is then a few
loops of `out[e] = k0 * a[e] + k1 * b[e] + ...` over such runs, which LLVM vectorizes. The
tile arrays are transposed to match, V^T (16, tiles, C) instead of V (16, C, tiles), and the
GEMMs run on them transposed (M^T = V^T @ U^T). A block of small images is sized to stay in a
core's L2 cache from the transform that writes them to the GEMM that reads them (BLOCK_BYTES);
a larger image is a block of its own, past the cache, and still gains from the vectorized
transforms. The transforms after a GEMM (y from M^T, gx from dV^T) go one tile row at a time,
their intermediate rows in L1.

    forward      per block: V^T = (B^T x B)^T, M^T = V^T @ U^T, y = A^T M A (+ b)
    input_grad   per block: dM^T = (A gy A^T)^T, dV^T = dM^T @ U, gx = B dV B^T
    weight_grad  per block: dM^T and V^T as above, dU_block = (dM^T)^T @ V^T;
                 gw = G^T (sum of dU_block) G
    grads        input_grad and weight_grad from one dM^T per block

The worker threads (host_blas.run_parts: one hand-off per pass) take blocks in turn, running
the kernels below (compiled nogil) and one-thread BLAS GEMMs. Blocks depend on the
batch only, never on the thread count, and the weight gradient sums its per-block dU in block
order, so every result is the same on any number of threads. The numbers are the whole-batch
passes' up to the order of float additions (tests/kernels/test_conv_winograd_blocked.py).
"""

from __future__ import annotations

import itertools

import numpy as np
from numba import njit

from gpugrad import backend, host_blas
from gpugrad.kernels import conv_winograd as wino
from gpugrad.kernels.conv import _is_int
from gpugrad.kernels.checks import check_float_array, check_same_dtype

POSITIONS = wino.POSITIONS
# Images per block, from three rules. The most images a block takes, where they are small:
# its two largest tile arrays together about half of the 2 MiB L2 of the bench machine's
# cores, leaving room for the phase arrays, the filters and BLAS's packed panels.
BLOCK_BYTES = 1 << 20
# Fewer images, though, if that gives a pass fewer than MIN_BLOCKS blocks (up to this many
# threads get work, whatever the machine), but no fewer than MIN_BLOCK_BYTES of tile arrays
# hold: a block of less is a few hundred microseconds of kernels, and the threads spend it
# taking turns at the GIL between them (on the 2-core VM, in an ad hoc paired run, 8 images
# of 8 channels and 14x14 took 0.91 ms in 8 blocks and 0.62 ms in one; measured with two
# threads only).
MIN_BLOCKS = 8
MIN_BLOCK_BYTES = 1 << 19
# And more images, if the batch would need more than MAX_BLOCKS blocks: the weight gradient
# keeps one dU (16 x K x C/groups) per block until the pass ends.
MAX_BLOCKS = 64

# The transforms' matrices as terms: row r of a matrix is (count, index, sign, index, sign,
# index, sign), the nonzero entries of that row. The ±1 signs make every product exact.
# B^T (4x4): V = B^T d B combines 2 of the 4 patch rows (and columns) per output row.
_BT_ROWS = np.array([[2, 0, 1, 2, -1, 0, 0], [2, 1, 1, 2, 1, 0, 0],
                     [2, 2, 1, 1, -1, 0, 0], [2, 1, 1, 3, -1, 0, 0]], dtype=np.int64)
# B^T's columns: gx = B dV B^T gives patch row i from up to 3 rows of dV.
_BT_COLS = np.array([[1, 0, 1, 0, 0, 0, 0], [3, 1, 1, 2, -1, 3, 1],
                     [3, 0, -1, 1, 1, 2, 1], [1, 3, -1, 0, 0, 0, 0]], dtype=np.int64)
# A^T's columns: dM = A gy A^T gives row a of dM from up to 2 of the tile's 2 rows.
_AT_COLS = np.array([[1, 0, 1, 0, 0, 0, 0], [2, 0, 1, 1, 1, 0, 0],
                     [2, 0, 1, 1, -1, 0, 0], [1, 1, -1, 0, 0, 0, 0]], dtype=np.int64)


def image_bytes(channels: int, filters: int, out_hw, itemsize: int) -> int:
    """The bytes of one image's tile arrays, V^T and M^T (or dM^T and dV^T): what a block of
    images must hold in cache."""
    th, tw = wino.tile_counts(*out_hw)
    return POSITIONS * (channels + filters) * th * tw * itemsize


def block_bounds(n_img: int, per_image_bytes: int) -> list[tuple[int, int]]:
    """[(first image, end), ...]: the blocks of a pass over n_img images (none for none)."""
    per_image_bytes = max(per_image_bytes, 1)
    size = max(1, min(BLOCK_BYTES // per_image_bytes,
                      max(n_img // MIN_BLOCKS, MIN_BLOCK_BYTES // per_image_bytes)),
               -(-n_img // MAX_BLOCKS))
    return [(s, min(s + size, n_img)) for s in range(0, n_img, size)]


# ----------------------------------------------------------------------------- kernels
# Phase arrays are flat: (4 phases, nb, rows, cols, channels), phase = 2 * row parity + column
# parity. Runs are taken as 1-D slices and indexed from 0: Numba then knows no index is
# negative and LLVM vectorizes the loop (an offset index would keep a wraparound test per
# element, and the loop scalar).


@njit(cache=True, nogil=True, inline="always")
def _phase_start(i, j, n, ty, rows, cols, phase, n_ch):
    """Where entry (ty + i // 2, j // 2) of image n's phase (i % 2, j % 2) starts: padded-canvas
    row 2 ty + i, column j."""
    return ((i & 1) * 2 + (j & 1)) * phase + ((n * rows + ty + (i >> 1)) * cols + (j >> 1)) * n_ch


@njit(cache=True, nogil=True)
def _to_phases(a, ph, pw, rows, cols, p):
    """a (nb, C, h, w) into phase arrays of (rows, cols) entries per image and phase, the
    image at (ph, pw) of the padded canvas. Entries outside the image are left as they are."""
    nb, n_ch, h, w = a.shape
    phase = nb * rows * cols * n_ch
    plane = h * w
    for n in range(nb):
        src_img = a[n].reshape(n_ch * plane)
        for r in range(h):
            rr = ph + r
            for q in range(w):
                qq = pw + q
                start = _phase_start(rr, qq, n, 0, rows, cols, phase, n_ch)
                dst = p[start:start + n_ch]
                src = src_img[r * w + q:]
                for c in range(n_ch):
                    dst[c] = src[c * plane]


@njit(cache=True, nogil=True, inline="always")
def _write_row(buf, bias, out, n, r):
    """out[n, c, r] = buf[c, :w] + bias[c] for every channel c: an output row gathered
    channels-last into `buf`, written out a channel row at a time."""
    w = out.shape[3]
    for c in range(out.shape[1]):
        b = bias[c]
        dst = out[n, c, r]
        row = buf[c]
        for q in range(w):
            dst[q] = row[q] + b


@njit(cache=True, nogil=True)
def _from_phases(p, ph, pw, rows, cols, bias, out, buf):
    """out (nb, C, h, w)[n, c, r, q] = the padded canvas at (ph + r, pw + q), plus bias[c].

    One output row at a time: gathered channels-last into `buf` (C, w), a small array that
    stays in L1, then written out a channel row at a time. Writing the output directly, a
    channel at a time per pixel, cost 1.3-1.4x more when the output is not in cache (each of
    its writes touched another cache line)."""
    nb, n_ch, h, w = out.shape
    phase = nb * rows * cols * n_ch
    for n in range(nb):
        for r in range(h):
            rr = ph + r
            for q in range(w):
                qq = pw + q
                start = _phase_start(rr, qq, n, 0, rows, cols, phase, n_ch)
                src = p[start:start + n_ch]
                for c in range(n_ch):
                    buf[c, q] = src[c]
            _write_row(buf, bias, out, n, r)


@njit(cache=True, nogil=True)
def _input_transform(p, nb, th, tw, n_ch, vt, plane):
    """V^T from the input's phases, (th + 1, tw + 1) per image: V[4a + b] = sum over i, j of
    B^T[a, i] B^T[b, j] d[i, j], 2 x 2 terms, one tile row at a time. V^T's 16 planes of
    nb*th*tw*C numbers start at xi * plane in the flat array vt."""
    rows, cols = th + 1, tw + 1
    phase = nb * rows * cols * n_ch
    run = tw * n_ch
    for n in range(nb):
        for ty in range(th):
            first = (n * th + ty) * run
            for a in range(4):
                i0, i1 = _BT_ROWS[a, 1], _BT_ROWS[a, 3]
                for b in range(4):
                    j0, j1 = _BT_ROWS[b, 1], _BT_ROWS[b, 3]
                    start = (4 * a + b) * plane + first
                    out = vt[start:start + run]
                    s00 = _phase_start(i0, j0, n, ty, rows, cols, phase, n_ch)
                    s01 = _phase_start(i0, j1, n, ty, rows, cols, phase, n_ch)
                    s10 = _phase_start(i1, j0, n, ty, rows, cols, phase, n_ch)
                    s11 = _phase_start(i1, j1, n, ty, rows, cols, phase, n_ch)
                    d00 = p[s00:s00 + run]
                    d01 = p[s01:s01 + run]
                    d10 = p[s10:s10 + run]
                    d11 = p[s11:s11 + run]
                    ka, kb = _BT_ROWS[a, 4], _BT_ROWS[b, 4]  # the second term's signs
                    k01 = out.dtype.type(kb)
                    k10 = out.dtype.type(ka)
                    k11 = out.dtype.type(ka * kb)
                    for e in range(run):
                        out[e] = d00[e] + k01 * d01[e] + k10 * d10[e] + k11 * d11[e]


@njit(cache=True, nogil=True, inline="always")
def _output_phases(mt, first, yp):
    """yp[2i + j, e] = (A^T M A)[i, j] for e < yp.shape[1], M[4a + b] = mt[4a + b, first + e]:
    a tile row's four output phases from its 16 runs of M^T, in one pass over them.

    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]] (2x4): A^T along each of M's 4 tile rows (r[a][j]),
    then down the columns, each sum left to right. Two loops through an (8, run) buffer, as
    this was first written, read 36 runs and wrote 12 where this reads 16 and writes 4."""
    run = yp.shape[1]
    end = first + run
    m0, m1, m2, m3 = mt[0, first:end], mt[1, first:end], mt[2, first:end], mt[3, first:end]
    m4, m5, m6, m7 = mt[4, first:end], mt[5, first:end], mt[6, first:end], mt[7, first:end]
    m8, m9, m10, m11 = mt[8, first:end], mt[9, first:end], mt[10, first:end], mt[11, first:end]
    m12, m13, m14, m15 = mt[12, first:end], mt[13, first:end], mt[14, first:end], mt[15, first:end]
    y00, y01, y10, y11 = yp[0], yp[1], yp[2], yp[3]
    for e in range(run):
        r00 = m0[e] + m1[e] + m2[e]
        r01 = m1[e] - m2[e] - m3[e]
        r10 = m4[e] + m5[e] + m6[e]
        r11 = m5[e] - m6[e] - m7[e]
        r20 = m8[e] + m9[e] + m10[e]
        r21 = m9[e] - m10[e] - m11[e]
        r30 = m12[e] + m13[e] + m14[e]
        r31 = m13[e] - m14[e] - m15[e]
        y00[e] = r00 + r10 + r20
        y01[e] = r01 + r11 + r21
        y10[e] = r10 - r20 - r30
        y11[e] = r11 - r21 - r31


@njit(cache=True, nogil=True)
def _store_output(mt, th, tw, yp, bias, y, buf):
    """y block (nb, K, oh, ow) = A^T M A per tile, plus bias, from M^T (16, nb*th*tw*K), one
    tile row at a time: its 4 output phases (yp, 4 x tw*K, in L1), then its two output rows,
    gathered channels-last into `buf` (K, ow) and written out a channel row at a time, as
    _from_phases does. Whole-block phases measured 1.02-1.08x slower: they went through L2."""
    nb, n_k, oh, ow = y.shape
    run = tw * n_k
    for n in range(nb):
        for ty in range(th):
            # M^T rows are (tiles, K): the tile row's outputs come out (tw, K) per phase, the
            # output at (2 ty + i, 2 tx + j) of every tile tx and filter.
            _output_phases(mt, (n * th + ty) * run, yp)
            for i in range(2):
                r = 2 * ty + i
                if r >= oh:
                    break  # past an odd bottom edge
                for q in range(ow):
                    start = (q >> 1) * n_k
                    src = yp[2 * i + (q & 1), start:start + n_k]
                    for c in range(n_k):
                        buf[c, q] = src[c]
                _write_row(buf, bias, y, n, r)


# One loop per output run, whatever the number of terms: out = (or +=) sum of k * src.


@njit(cache=True, nogil=True, inline="always")
def _set1(out, k0, s0):
    for e in range(out.shape[0]):
        out[e] = k0 * s0[e]


@njit(cache=True, nogil=True, inline="always")
def _set2(out, k0, s0, k1, s1):
    for e in range(out.shape[0]):
        out[e] = k0 * s0[e] + k1 * s1[e]


@njit(cache=True, nogil=True, inline="always")
def _set3(out, k0, s0, k1, s1, k2, s2):
    for e in range(out.shape[0]):
        out[e] = k0 * s0[e] + k1 * s1[e] + k2 * s2[e]


@njit(cache=True, nogil=True, inline="always")
def _set4(out, k0, s0, k1, s1, k2, s2, k3, s3):
    for e in range(out.shape[0]):
        out[e] = k0 * s0[e] + k1 * s1[e] + k2 * s2[e] + k3 * s3[e]


@njit(cache=True, nogil=True, inline="always")
def _add1(out, k0, s0):
    for e in range(out.shape[0]):
        out[e] += k0 * s0[e]


@njit(cache=True, nogil=True, inline="always")
def _add3(out, k0, s0, k1, s1, k2, s2):
    for e in range(out.shape[0]):
        out[e] += k0 * s0[e] + k1 * s1[e] + k2 * s2[e]


@njit(cache=True, nogil=True)
def _gy_transform(g, length, dmt):
    """dM^T (16, length) = A gy A^T per tile, from gy's 4 phases of `length` numbers each:
    dM[4a + b] = sum of A^T[i, a] A^T[j, b] gy_phase[2i + j], 1, 2 or 4 terms."""
    for a in range(4):
        for b in range(4):
            out = dmt[4 * a + b, :length]
            ks = np.zeros(4, out.dtype)
            srcs = np.zeros(4, np.int64)
            count = 0
            for u in range(_AT_COLS[a, 0]):
                i = _AT_COLS[a, 1 + 2 * u]
                for v in range(_AT_COLS[b, 0]):
                    j = _AT_COLS[b, 1 + 2 * v]
                    ks[count] = _AT_COLS[a, 2 + 2 * u] * _AT_COLS[b, 2 + 2 * v]
                    srcs[count] = (2 * i + j) * length
                    count += 1
            s0 = g[srcs[0]:srcs[0] + length]
            s1 = g[srcs[1]:srcs[1] + length]
            s2 = g[srcs[2]:srcs[2] + length]
            s3 = g[srcs[3]:srcs[3] + length]
            if count == 1:
                _set1(out, ks[0], s0)
            elif count == 2:
                _set2(out, ks[0], s0, ks[1], s1)
            else:
                _set4(out, ks[0], s0, ks[1], s1, ks[2], s2, ks[3], s3)


@njit(cache=True, nogil=True)
def _input_grad_transform(dvt, nb, th, tw, n_ch, q16, p):
    """The input's phases (th + 1, tw + 1 per image; zeroed here) = B dV B^T per tile, summed
    where patches overlap, from dV^T (16, nb*th*tw*C), one tile row at a time. q16: scratch
    (16, tw*C) for a tile row's first stage, which stays in L1 (a first stage over the whole
    block, through L2, measured 1.03-1.05x slower for the input and weight gradients)."""
    dt = dvt.dtype.type  # constants in the array's dtype: float32 * int64 would be float64
    p[:] = 0
    cols = tw + 1
    phase = nb * (th + 1) * cols * n_ch
    run = tw * n_ch
    for n in range(nb):
        for ty in range(th):
            first = (n * th + ty) * run
            # B down each column of dV: q16[4i + b] = sum_a B^T[a, i] dV[4a + b], 1 or 3
            # terms ...
            for i in range(4):
                rows = _BT_COLS[i]
                for b in range(4):
                    out = q16[4 * i + b, :run]
                    s0 = dvt[4 * rows[1] + b, first:first + run]
                    if rows[0] == 1:
                        _set1(out, dt(rows[2]), s0)
                    else:
                        _set3(out, dt(rows[2]), s0, dt(rows[4]),
                              dvt[4 * rows[3] + b, first:first + run], dt(rows[6]),
                              dvt[4 * rows[5] + b, first:first + run])
            # ... then along the rows, added onto the patches: canvas[2ty + i, 2tx + j] +=
            # sum_b B^T[b, j] q16[4i + b]. For one (i, j), distinct tiles hit distinct entries.
            for i in range(4):
                for j in range(4):
                    start = _phase_start(i, j, n, ty, th + 1, cols, phase, n_ch)
                    dst = p[start:start + run]
                    terms = _BT_COLS[j]
                    s0 = q16[4 * i + terms[1], :run]
                    if terms[0] == 1:
                        _add1(dst, dt(terms[2]), s0)
                    else:
                        _add3(dst, dt(terms[2]), s0, dt(terms[4]), q16[4 * i + terms[3], :run],
                              dt(terms[6]), q16[4 * i + terms[5], :run])


# Each block's work between two GEMMs, one call each (fewer calls from Python, whose time
# the two worker threads share under the GIL).


@njit(cache=True, nogil=True)
def _load_input(x, ph, pw, th, tw, p, clear, vt, plane):
    """An input block (nb, C, h, w) -> its phases p (zeroed first when `clear`) -> V^T."""
    if clear:
        p[:] = 0
    _to_phases(x, ph, pw, th + 1, tw + 1, p)
    _input_transform(p, x.shape[0], th, tw, x.shape[1], vt, plane)


@njit(cache=True, nogil=True)
def _load_gy(gy, th, tw, g, clear, dmt):
    """A gy block (nb, K, oh, ow) -> its phases g (zeroed first when `clear`) -> dM^T."""
    if clear:
        g[:] = 0
    _to_phases(gy, 0, 0, th, tw, g)
    _gy_transform(g, gy.shape[0] * th * tw * gy.shape[1], dmt)


@njit(cache=True, nogil=True)
def _store_input_grad(dvt, th, tw, q16, p, ph, pw, zero_bias, gx, buf):
    """dV^T -> the input's phases p -> gx block (nb, C, h, w)."""
    _input_grad_transform(dvt, gx.shape[0], th, tw, gx.shape[1], q16, p)
    _from_phases(p, ph, pw, th + 1, tw + 1, zero_bias, gx, buf)


# ----------------------------------------------------------------------------- passes


class _Pass:
    """Tiles, blocks and per-thread buffers of one pass."""

    def __init__(self, n_img, channels, filters, out_hw, groups, dtype):
        self.groups = groups
        self.th, self.tw = wino.tile_counts(*out_hw)
        self.tiles = self.th * self.tw  # per image
        self.dtype = np.dtype(dtype)
        self.blocks = block_bounds(n_img, image_bytes(channels, filters, out_hw,
                                                      self.dtype.itemsize))
        self.most = max((e - s for s, e in self.blocks), default=0)

    def tiles_t(self, channels):
        """An uninitialised (16, tiles of the largest block, channels) array: V^T, M^T..."""
        return np.empty((POSITIONS, self.most * self.tiles, channels), self.dtype)

    def phases(self, channels, rows, cols):
        """Zeroed flat phase arrays for the largest block."""
        return np.zeros(4 * self.most * rows * cols * channels, self.dtype)

    def input_phases(self, channels):
        return self.phases(channels, self.th + 1, self.tw + 1)

    def grouped(self, a, n_tiles):
        """(16, >= n_tiles, channels) -> (16, groups, n_tiles, channels/groups): the GEMMs'
        batch dims (a view: each matrix's rows are `channels` apart)."""
        g = self.groups
        a = a[:, :n_tiles]
        return a.reshape(POSITIONS, n_tiles, g, a.shape[2] // g).transpose(0, 2, 1, 3)


def _run(part, n_blocks):
    """part(block indices) on each worker thread, the workers taking the blocks 0..n_blocks-1
    in turn from one shared counter: a thread that the machine slows down (a busy core, a
    virtual CPU that is not scheduled) does fewer blocks instead of holding the pass up.
    Which thread did a block changes nothing in its numbers."""
    counter = itertools.count()  # next() on it is atomic under the GIL

    def indices():
        for i in counter:
            if i >= n_blocks:
                return
            yield i

    host_blas.run_parts(lambda _: part(indices()), min(host_blas.worker_count(), n_blocks))


def _filters(w, groups):
    """U = G w G^T as (16, groups, K/groups, C/groups)."""
    u = wino.filter_transform(w)
    return u.reshape(POSITIONS, groups, u.shape[1] // groups, u.shape[2])


def _check(op, x_shape, w_shape, padding, groups):
    """padding and out_hw of a pass, checked (ops.conv has checked what users pass)."""
    if (len(x_shape) != 4 or len(w_shape) != 4 or tuple(w_shape[2:]) != (3, 3)
            or not all(_is_int(d) and d >= 0 for d in (*x_shape, *w_shape))):
        raise ValueError(f"{op}: expected a 4-D input and (K, C/groups, 3, 3) filters, got "
                         f"shapes {tuple(x_shape)} and {tuple(w_shape)}")
    if (not _is_int(groups) or groups < 1 or x_shape[1] != w_shape[1] * groups
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
    """NumPy float arrays of one dtype."""
    first = None
    for name, a in arrays.items():
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{op}: runs on the CPU only; {name} is a {type(a).__name__}, "
                            "not a NumPy array")
        check_float_array(op, name, a)
        if first is None:
            first = name, a.dtype
        elif a.dtype != first[1]:
            raise TypeError(f"{op}: {first[0]} is {first[1]} but {name} is {a.dtype}; "
                            "expected one dtype for all")


def forward(x, w, bias=None, padding=(0, 0), groups=1):
    """y = conv2d(x, w, bias, padding=padding, groups=groups), 3x3 stride 1, NCHW, on NumPy.

    Nothing is kept for the weight gradient: it transforms x again, block by block. Keeping
    V^T (4x x's size) measured 4-6% slower in `gpugrad bench kernels`, where other work runs
    between the forward and the backward, as it does in a network: V^T went to memory and
    back."""
    op = "winograd forward"
    _check_arrays(op, x=x, w=w)
    padding, out_hw = _check(op, x.shape, w.shape, padding, groups)
    if bias is not None:
        check_float_array(op, "bias", bias, shape=(w.shape[0],))
        check_same_dtype(op, "bias", bias, x.dtype)
    n, c = x.shape[:2]
    k = w.shape[0]
    ps = _Pass(n, c, k, out_hw, groups, x.dtype)
    x = np.ascontiguousarray(x)
    b = np.zeros(k, x.dtype) if bias is None else np.ascontiguousarray(bias)
    u_t = np.ascontiguousarray(_filters(w, groups).transpose(0, 1, 3, 2))  # (16, G, C/G, K/G)
    y = backend.empty((n, k, *out_hw), x.dtype, like=x)  # cached pages: no page faults
    th, tw = ps.th, ps.tw

    def part(indices):
        p_in = ps.input_phases(c)
        vt, mt = ps.tiles_t(c), ps.tiles_t(k)
        y_row = np.empty((4, tw * k), x.dtype)
        row_buf = np.empty((k, out_hw[1]), x.dtype)
        mt_rows = mt.reshape(POSITIONS, -1)
        vt_flat, plane = vt.reshape(-1), vt[0].size
        views = {}  # per block size (at most two): the GEMM's views of V^T and M^T
        last = None
        for i in indices:
            s, e = ps.blocks[i]
            nb, n_tiles = e - s, (e - s) * ps.tiles
            if nb not in views:
                views[nb] = (ps.grouped(vt, n_tiles), ps.grouped(mt, n_tiles))
            # The phases' zero border holds while the layout (set by nb) stays the same.
            _load_input(x[s:e], *padding, th, tw, p_in, last not in (None, nb), vt_flat, plane)
            last = nb
            np.matmul(views[nb][0], u_t, out=views[nb][1])
            _store_output(mt_rows, th, tw, y_row, b, y[s:e], row_buf)

    _run(part, len(ps.blocks))
    return y


def _backward(x, gy, w, x_shape, w_shape, padding, groups, op):
    """(gx, gw) from one dM^T per block: gx when w is given, gw when x is."""
    padding, out_hw = _check(op, x_shape, w_shape, padding, groups)
    n, c = x_shape[:2]
    k = w_shape[0]
    if tuple(gy.shape) != (n, k, *out_hw):
        raise ValueError(f"{op}: expected gy of shape {(n, k, *out_hw)}, got {tuple(gy.shape)}")
    ps = _Pass(n, c, k, out_hw, groups, gy.dtype)
    th, tw = ps.th, ps.tw
    gy = np.ascontiguousarray(gy)
    gx = u = du_blocks = None
    if w is not None:
        gx = backend.empty(x_shape, gy.dtype, like=gy)
        u = np.ascontiguousarray(_filters(w, groups))  # (16, G, K/G, C/G)
    if x is not None:
        x = np.ascontiguousarray(x)
        # One dU per block, summed in block order after the pass: the same on any thread count.
        du_blocks = np.empty((len(ps.blocks), POSITIONS, groups, k // groups, c // groups),
                             gy.dtype)
    zero_bias = np.zeros(c, gy.dtype)

    def part(indices):
        dmt, cvt = ps.tiles_t(k), ps.tiles_t(c)  # cvt: dV^T, then V^T
        dmt_rows, cvt_rows = dmt.reshape(POSITIONS, -1), cvt.reshape(POSITIONS, -1)
        g = ps.phases(k, th, tw)
        p_gx = ps.input_phases(c) if gx is not None else None
        q16 = np.empty((POSITIONS, tw * c), gy.dtype) if gx is not None else None
        p_x = ps.input_phases(c) if du_blocks is not None else None
        row_buf = np.empty((c, x_shape[3]), gy.dtype)
        cvt_flat, plane = cvt.reshape(-1), cvt[0].size
        last = None
        views = {}  # per block size (at most two): the GEMMs' views of dM^T and of dV^T / V^T
        for i in indices:
            s, e = ps.blocks[i]
            nb, n_tiles = e - s, (e - s) * ps.tiles
            if nb not in views:
                views[nb] = (ps.grouped(dmt, n_tiles), ps.grouped(cvt, n_tiles))
            dm_g, cv_g = views[nb]
            # Past an odd output edge the phases must read zero: they are cleared whenever
            # the layout (set by nb) changes.
            _load_gy(gy[s:e], th, tw, g, last not in (None, nb), dmt_rows)
            if gx is not None:
                np.matmul(dm_g, u, out=cv_g)
                _store_input_grad(cvt_rows, th, tw, q16, p_gx, *padding, zero_bias, gx[s:e],
                                  row_buf)
            if du_blocks is not None:
                _load_input(x[s:e], *padding, th, tw, p_x, last not in (None, nb), cvt_flat,
                            plane)
                np.matmul(dm_g.transpose(0, 1, 3, 2), cv_g, out=du_blocks[i])
            last = nb

    _run(part, len(ps.blocks))
    gw = None
    if du_blocks is not None:
        du = du_blocks.sum(axis=0).reshape(POSITIONS, k, c // groups)
        gw = wino.filter_grad_transform(du)
    return gx, gw


def input_grad(gy, w, x_shape, padding=(0, 0), groups=1):
    """gx: conv2d's gradient in x, for output gradient gy and an input of shape x_shape."""
    op = "winograd input_grad"
    _check_arrays(op, gy=gy, w=w)
    return _backward(None, gy, w, tuple(x_shape), w.shape, padding, groups, op)[0]


def weight_grad(x, gy, w_shape, padding=(0, 0), groups=1):
    """gw: conv2d's gradient in w, for input x and output gradient gy."""
    op = "winograd weight_grad"
    _check_arrays(op, x=x, gy=gy)
    return _backward(x, gy, None, x.shape, tuple(w_shape), padding, groups, op)[1]


def grads(x, gy, w, padding=(0, 0), groups=1):
    """(gx, gw) together: each block's dM^T is made once and read by both."""
    op = "winograd grads"
    _check_arrays(op, x=x, gy=gy, w=w)
    return _backward(x, gy, w, x.shape, w.shape, padding, groups, op)
