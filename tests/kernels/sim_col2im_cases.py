"""The CUDA col2im kernels under the CUDA simulator, against the reference: a sweep of kernel
sizes, strides, paddings and dilations.

Not collected by a plain ``pytest`` run (the file name does not start with ``test_``):
tests/kernels/test_col2im_cuda.py runs it in a subprocess with NUMBA_ENABLE_CUDASIM=1, which must
be set before numba.cuda is first imported. The kernels get NumPy arrays. Images stay small (the
simulator runs one Python thread per CUDA thread) but hold more pixels than the simulated grid
of 64 threads, so the grid-stride loop wraps.

Up to 49 taps conv_cuda.col2im runs the kernel compiled for the kernel size, past that the
generic gather; both add a pixel's taps in the reference's (ky, kx) order, starting from +0
like the reference's zeroed image, so every comparison is to the bit, float32 and float64
alike. The image starts as NaN: a pixel the kernel never writes shows.
"""

import itertools
import os

import numpy as np
import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    pytest.skip("run through tests/kernels/test_col2im_cuda.py", allow_module_level=True)

from gpugrad import backend  # noqa: E402
from gpugrad.bench import gpu_variants  # noqa: E402
from gpugrad.kernels import (  # noqa: E402
    col2im,
    col2im_reference,
    conv_cuda,
    conv_output_size,
    im2col,
)

# Every size compiled (up to 7x7), and past MAX_SIZED_TAPS the generic gather (7x8, 8x8).
KERNELS = ([(k, k) for k in range(1, 9)] + [(1, 7), (7, 1), (2, 5), (5, 2), (3, 2), (1, 3)]
           + [(7, 8)])


def col2im_cuda(cols, in_h, in_w, stride, padding, dilation, layout="batch"):
    """conv_cuda.col2im (the kernel choice by size included) into an image of NaN, so that a
    pixel the kernel misses shows; the layout's arguments as kernels.col2im takes them."""
    channel_major = layout == "channel"
    if channel_major:
        n_ch, kh, kw, n_img = cols.shape[:4]
    else:
        n_img, n_ch, kh, kw = cols.shape[:4]
    (sy, sx), (ph, pw), (dy, dx) = stride, padding, dilation
    x = np.full((n_img, n_ch, in_h, in_w), np.nan, cols.dtype)
    conv_cuda.col2im(np.ascontiguousarray(cols), kh, kw, sy, sx, ph, pw, dy, dx, channel_major,
                     x, "cuda")
    return x


def _geometries():
    """Four geometries per kernel size, (x shape, kernel, stride, padding, dilation, dtype).

    Stride and dilation cycle through 1..3 on each axis independently; padding runs from 0 to
    one more than the kernel's extent (outputs that read only padding); image sides are odd or
    even as the cycle falls, a few outputs more than the dilated kernel needs. float32 and
    float64 alternate, so each dtype meets every kernel size and both image parities."""
    cases = []
    for idx, (kh, kw) in enumerate(KERNELS):
        for j in range(4):
            stride = (1 + (idx + j) % 3, 1 + (idx + 2 * j + 1) % 3)
            dilation = (1 + (idx + 2 * j) % 3, 1 + (idx + j + 2) % 3)
            padding = ((0, kh // 2, kh + 1, 1)[j], (kw + 1, 0, kw // 2, kw - 1)[j])
            sides = []
            for k, s, p, d in zip((kh, kw), stride, padding, dilation, strict=True):
                extent = d * (k - 1) + 1
                sides.append(max(1, extent - 2 * p) + s * (j + 2) + (idx + j) % 2)
            shape = (1 + (idx + j) % 3, 1 + (idx + 2 * j) % 3, *sides)
            dtype = (np.float32, np.float64)[(idx + j) % 2]
            cases.append((shape, (kh, kw), stride, padding, dilation, dtype))
    return cases


GEOMETRIES = _geometries()
IDS = [f"{s[0]}x{s[1]}x{s[2]}x{s[3]}-k{k[0]}x{k[1]}-s{st[0]}{st[1]}-p{p[0]}{p[1]}-d{d[0]}{d[1]}"
       f"-{np.dtype(t).name}" for s, k, st, p, d, t in GEOMETRIES]


@pytest.fixture
def rng():
    return np.random.default_rng(23)


def _columns(rng, shape, ksize, stride, padding, dilation, dtype):
    """Random batch-layout columns for an image of `shape`."""
    out = [conv_output_size(shape[2 + a], ksize[a], stride[a], padding[a], dilation[a])
           for a in range(2)]
    assert min(out) >= 1, (shape, ksize, stride, padding, dilation)
    return rng.standard_normal((*shape[:2], *ksize, *out)).astype(dtype)


def _in_layout(cols, layout):
    return cols if layout == "batch" else np.ascontiguousarray(cols.transpose(1, 2, 3, 0, 4, 5))


def test_the_simulator_is_what_runs():
    assert backend.uses_simulated_cuda()
    kernel = conv_cuda.sized_col2im_kernel(3, 3, np.float32)
    assert type(kernel).__name__ == "FakeCUDAKernel"


def test_the_kernels_cover_both_col2im_kernels():
    taps = [kh * kw for kh, kw in KERNELS]
    assert min(taps) == 1 and max(taps) > conv_cuda.MAX_SIZED_TAPS
    assert sum(t > conv_cuda.MAX_SIZED_TAPS for t in taps) == 2


def test_the_geometries_cover_the_brief():
    kernels = {k for _, k, *_ in GEOMETRIES}
    assert kernels == set(KERNELS)
    for dtype in (np.float32, np.float64):
        assert {k for _, k, *_, t in GEOMETRIES if t == dtype} == set(KERNELS)
    for axis in range(2):
        assert {st[axis] for _, _, st, _, _, _ in GEOMETRIES} == {1, 2, 3}
        assert {d[axis] for _, _, _, _, d, _ in GEOMETRIES} == {1, 2, 3}
        # Padding of 0 and padding past the dilated kernel's extent, on each axis.
        assert any(p[axis] == 0 for _, _, _, p, _, _ in GEOMETRIES)
        assert any(p[axis] > d[axis] * (k[axis] - 1) + 1 for _, k, _, p, d, _ in GEOMETRIES)
        assert {s[2 + axis] % 2 for s, *_ in GEOMETRIES} == {0, 1}
    # Some image pixels are read by no output (stride past the dilated kernel): they must be 0.
    assert any(st[a] > d[a] * (k[a] - 1) + 1
               for _, k, st, _, d, _ in GEOMETRIES for a in range(2))
    # Most images hold more pixels than the 64 simulated threads: the grid-stride loop wraps.
    assert sum(np.prod(s) > 64 for s, *_ in GEOMETRIES) > len(GEOMETRIES) // 2


@pytest.mark.parametrize("layout", ["batch", "channel"])
@pytest.mark.parametrize("shape, ksize, stride, padding, dilation, dtype", GEOMETRIES, ids=IDS)
def test_col2im_matches_the_reference(rng, shape, ksize, stride, padding, dilation, dtype,
                                         layout):
    cols = _columns(rng, shape, ksize, stride, padding, dilation, dtype)
    expected = col2im_reference(cols, *shape[2:], stride, padding, dilation)
    got = col2im_cuda(_in_layout(cols, layout), *shape[2:], stride, padding, dilation, layout)
    assert got.dtype == dtype and got.shape == shape
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ksize", KERNELS, ids=[f"k{a}x{b}" for a, b in KERNELS])
def test_both_dtypes_on_every_kernel_size(rng, ksize, dtype):
    shape, stride, padding, dilation = (2, 3, 9, 8), (2, 1), (1, 2), (1, 1)
    cols = _columns(rng, shape, ksize, stride, padding, dilation, dtype)
    expected = col2im_reference(cols, *shape[2:], stride, padding, dilation)
    got = col2im_cuda(cols, *shape[2:], stride, padding, dilation)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("layout", ["batch", "channel"])
@pytest.mark.parametrize("shape, ksize, stride, padding, dilation", [
    ((3, 2, 7, 9), (3, 3), (1, 1), (1, 1), (1, 1)),
    ((2, 3, 11, 10), (3, 3), (2, 2), (2, 2), (2, 2)),
    ((2, 2, 13, 12), (7, 7), (2, 2), (3, 3), (1, 1)),
])  # fmt: skip
def test_compiled_kernel_equals_the_generic_gather(rng, shape, ksize, stride, padding, dilation,
                                                   layout):
    """On the timed geometries (scaled down), the kernel compiled for the size and the generic
    gather agree to the bit, as bench/gpu_variants.py checks on the GPU before it times them;
    the public dispatcher (kernels.col2im) gives the same image."""
    cols = _in_layout(_columns(rng, shape, ksize, stride, padding, dilation, np.float32), layout)
    generic = np.full(shape, np.nan, np.float32)
    conv_cuda.col2im_kernel[4, 16](cols, *ksize, *stride, *padding, *dilation,
                                   layout == "channel", generic)
    got = col2im_cuda(cols, *shape[2:], stride, padding, dilation, layout)
    np.testing.assert_array_equal(got, generic)
    public = col2im(cols, *shape[2:], stride, padding, dilation, device="cuda", layout=layout)
    np.testing.assert_array_equal(public, generic)


def test_special_values_pass_through_in_order(rng):
    """inf, -inf and NaN among the taps come out as the reference's sums do (the sum order
    decides inf - inf = NaN and where a NaN lands), and a tap of -0 leaves a +0 pixel."""
    shape, ksize, geo = (2, 2, 6, 7), (3, 3), ((1, 1), (1, 1), (1, 1))
    cols = _columns(rng, shape, ksize, *geo, np.float32)
    flat = cols.reshape(-1)
    flat[rng.choice(flat.size, 12, replace=False)] = np.inf
    flat[rng.choice(flat.size, 12, replace=False)] = -np.inf
    flat[rng.choice(flat.size, 6, replace=False)] = np.nan
    for layout in ("batch", "channel"):
        got = col2im_cuda(_in_layout(cols, layout), *shape[2:], *geo, layout)
        np.testing.assert_array_equal(got, col2im_reference(cols, *shape[2:], *geo))
    zeros = -np.zeros_like(cols)
    got = col2im_cuda(zeros, *shape[2:], *geo)
    assert not np.signbit(got).any()
    assert not np.signbit(col2im_reference(zeros, *shape[2:], *geo)).any()


@pytest.mark.parametrize("layout", ["batch", "channel"])
@pytest.mark.parametrize("shape", [(2, 0, 5, 4), (0, 3, 5, 4), (0, 0, 5, 4)])
def test_no_channels_or_images_launch_nothing(shape, layout):
    geo = ((1, 1), (1, 1), (1, 1))
    cols = _columns(np.random.default_rng(0), shape, (3, 3), *geo, np.float64)
    got = col2im_cuda(_in_layout(cols, layout), *shape[2:], *geo, layout)
    assert got.shape == shape and got.dtype == np.float64
    public = col2im(_in_layout(cols, layout), *shape[2:], *geo, device="cuda", layout=layout)
    assert public.shape == shape and public.dtype == np.float64


def test_one_pixel_images_and_one_output():
    """1x1 images, a kernel reading only padding but for one tap: divisions by 1 everywhere."""
    rng = np.random.default_rng(3)
    for ksize, padding in [((1, 1), (0, 0)), ((3, 3), (1, 1)), ((7, 1), (3, 0))]:
        shape, geo = (5, 3, 1, 1), ((1, 1), padding, (1, 1))
        cols = _columns(rng, shape, ksize, *geo, np.float64)
        got = col2im_cuda(cols, 1, 1, *geo)
        np.testing.assert_array_equal(got, col2im_reference(cols, 1, 1, *geo))


def test_kernels_are_built_once_per_size_and_dtype():
    k = conv_cuda.sized_col2im_kernel
    assert k(3, 3, np.float32) is k(3, 3, np.dtype("float32"))
    assert len({id(k(a, b, d)) for a, b, d in itertools.product((3, 2), (3, 2),
                                                                  (np.float32, np.float64))}) == 8


def test_more_than_49_taps_is_refused():
    with pytest.raises(ValueError, match="more than 49 taps"):
        conv_cuda.sized_col2im_kernel(7, 8, np.float32)


class _NumpyAsCupy:
    """The few CuPy calls _time_col2im makes, answered by NumPy: under the simulator the kernels
    take NumPy arrays, so the timing section runs end to end here (timings meaningless)."""

    def __init__(self, rng):
        self.random = type("random", (), {"standard_normal": staticmethod(
            lambda shape, dtype: rng.standard_normal(shape).astype(dtype))})
        self.ascontiguousarray = np.ascontiguousarray
        self.empty = np.empty
        self.empty_like = np.empty_like
        self.copyto = np.copyto
        self.array_equal = np.array_equal


def test_the_timing_section_runs_and_checks_the_kernels_agree(rng, monkeypatch):
    def one_call_each(fns, rounds, number, warmup, sync):  # the simulator is too slow to time
        return {name: [fn() or 1e-3] for name, fn in fns.items()}

    monkeypatch.setattr(gpu_variants.common, "paired_rounds", one_call_each)
    size = (2, 2, 9, 10, None)  # N, C, H, W, (filters: unused)
    rows = []
    for geometry in gpu_variants.COL2IM_TIMED:
        rows += gpu_variants._time_col2im(_NumpyAsCupy(rng), size, geometry, rounds=1)
    assert len(rows) == 5 * len(gpu_variants.COL2IM_TIMED)
    compiled = [r for r in rows if "compiled" in r["variant"]]
    assert len(compiled) == 2 * len(gpu_variants.COL2IM_TIMED)
    assert all(r["matches_generic"] is True for r in compiled)
    assert {r["shape"] for r in rows} == {
        "N=2 C=2 9x10 k3x3 s1 p1 d1", "N=2 C=2 9x10 k3x3 s2 p2 d2", "N=2 C=2 9x10 k7x7 s2 p3 d1"}
    for r in rows:
        assert r["gbps"] > 0 and r["pct_copy_bandwidth"] > 0, r


@pytest.mark.parametrize("ksize, sized", [((3, 3), True), ((7, 7), True), ((1, 49), True),
                                          ((7, 8), False), ((1, 50), False)])
def test_col2im_and_im2col_launch_the_kernel_for_their_size(monkeypatch, ksize, sized):
    """Up to 49 taps both run the kernel compiled for the size, past that the generic one (a
    test comparing the two would otherwise compare the generic kernel with itself)."""
    launched = []
    real = conv_cuda.launch_elementwise

    def spy(kernel, *args):
        launched.append(kernel)
        return real(kernel, *args)

    monkeypatch.setattr(conv_cuda, "launch_elementwise", spy)
    shape, geo = (1, 2, 9, 52), ((1, 1), (ksize[0] // 2, ksize[1] // 2), (1, 1))
    x = np.random.default_rng(4).standard_normal(shape).astype(np.float32)
    cols = im2col(x, ksize, *geo, device="cuda")
    img = col2im(cols, *shape[2:], *geo, device="cuda")
    np.testing.assert_array_equal(img, col2im_reference(cols, *shape[2:], *geo))
    if sized:
        assert launched == [conv_cuda.sized_im2col_kernel(*ksize, np.dtype(np.float32)),
                            conv_cuda.sized_col2im_kernel(*ksize, np.float32)]
    else:
        assert launched == [conv_cuda.im2col_kernel, conv_cuda.col2im_kernel]
