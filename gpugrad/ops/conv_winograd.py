"""conv2d by Winograd F(2x2, 3x3): for 3x3, stride-1, undilated convolutions on the CPU.

16 GEMMs of (K x C) @ (C x tiles), one per position in the 4x4 transformed tile, do 2.25x fewer
multiply-adds than im2col's one GEMM (the algorithm and the transforms: kernels/conv_winograd.py).
    forward      V = B^T x B,  M = U @ V,  y = A^T M A (+ b)          U = G w G^T
    prepare_gy   dM = A gy A^T
    input_grad   gx = B (U^T @ dM) B^T, summed over overlapping patches
    weight_grad  gw = G^T (dM @ V^T) G
Two ways to run a pass, chosen by `_blocked` from the shapes alone:
- block by block (kernels/conv_winograd_blocked.py): a few images at a time, channels last,
  every transform vectorized, small images' tile arrays in cache (BLOCK_BYTES a block);
  `grads` makes each block's dM once for both gradients. For 8 to 96 channels in and out and
  images whose tile arrays fit in 16 MiB (2 MiB for a single image: 28x28 with 64 channels;
  112x112 with 32 channels in a batch).
- over the whole batch (kernels/conv_winograd.py's transforms): one (image, channel) plane at
  a time, every product one batched GEMM over the 16 positions and the groups (backend.matmul:
  the batch split across threads, one BLAS thread each). For many channels (U and a block's
  tiles overflow the L2 cache), very large images and one large image (a single block, on a
  single thread).
Same five functions as ``conv_gemm``; ``ops/conv.py`` chooses between them. prepare_gy hands gy
on as it is: each pass transforms it in its own way.
"""

from __future__ import annotations

import contextlib

from gpugrad import backend
from gpugrad.kernels import conv_winograd as wino
from gpugrad.kernels import conv_winograd_blocked as blocked

NAME = "winograd"
# The blocked passes run where both channel counts are within these bounds and one image's
# tile arrays (blocked.image_bytes) within the first of these sizes, or the second for a
# single image, whose pass is a single block on a single thread. Measured by `gpugrad bench
# conv --passes` (bench/results/cpu-xeon/conv-passes-cpu.json): the whole-batch passes are
# ahead with 128 channels or more (U alone fills much of the L2 cache), for one large image
# and for batches of images of 24 MiB of tile arrays (112x112 with 64 channels, 224x224 with
# 16); the blocked ones, which still vectorize every transform where a block no longer fits
# in the cache, win on batches of images up to 12 MiB.
BLOCKED_MIN_CHANNELS = 8
BLOCKED_MAX_CHANNELS = 96
BLOCKED_MAX_IMAGE_BYTES = 16 << 20
BLOCKED_MAX_SINGLE_IMAGE_BYTES = 2 << 20
# "auto" (by shape, _blocked), or every pass "whole" or "blocked" (the context managers below).
_passes = "auto"


def _blocked(x_shape, w_shape, groups, out_hw, itemsize) -> bool:
    """Whether a pass over this convolution runs block by block (see the module docstring)."""
    if _passes != "auto":
        return _passes == "blocked"
    n, c = x_shape[:2]
    k = w_shape[0]
    per_image = blocked.image_bytes(c, k, out_hw, itemsize)
    return (BLOCKED_MIN_CHANNELS <= min(c, k) and max(c, k) <= BLOCKED_MAX_CHANNELS
            and per_image <= (BLOCKED_MAX_IMAGE_BYTES if n > 1
                              else BLOCKED_MAX_SINGLE_IMAGE_BYTES))


@contextlib.contextmanager
def _forced(passes):
    global _passes
    saved, _passes = _passes, passes
    try:
        yield
    finally:
        _passes = saved


def whole_batch_passes():
    """Inside: every Winograd pass runs over the whole batch (for `gpugrad bench conv` and for
    debugging; process-wide, not thread-safe). A weight gradient whose forward ran over the
    whole batch reads the V it kept, wherever it runs."""
    return _forced("whole")


def blocked_passes():
    """Inside: every Winograd pass runs block by block, whatever the shapes (for `gpugrad
    bench conv`, which times both ways on every layer, and for debugging; process-wide, not
    thread-safe). A weight gradient whose forward ran over the whole batch still reads the V
    it kept, over the whole batch."""
    return _forced("blocked")


def applies(geometry) -> bool:
    """Whether Winograd F(2x2, 3x3) computes this convolution: 3x3, stride 1, dilation 1."""
    kernel, stride, _, dilation, _ = geometry
    return kernel == (3, 3) and stride == (1, 1) and dilation == (1, 1)


def _out_hw(in_hw, padding):
    return in_hw[0] + 2 * padding[0] - 2, in_hw[1] + 2 * padding[1] - 2


def _grouped(a, groups):
    """(16, channels, X) -> (16, groups, channels/groups, X): the GEMMs' batch dims."""
    return a.reshape(a.shape[0], groups, a.shape[1] // groups, a.shape[2])


def _filters(w, groups, device):
    """U = G w G^T as (16, groups, OC/groups, C/groups)."""
    return _grouped(wino.filter_transform(w, device=device), groups)


def _blocked_weight_grad(saved, x_shape, w_shape, groups, out_hw, itemsize) -> bool:
    """The weight gradient's passes: the whole-batch ones when the forward kept its V (it ran
    them), else by shape."""
    return saved is None and _blocked(x_shape, w_shape, groups, out_hw, itemsize)


def forward(x, w, b, geometry, device):
    """y (N, OC, oh, ow) and what weight_grad reuses: the whole-batch passes' V (transforming
    x again costs more there); the blocked passes keep nothing (see conv_winograd_blocked)."""
    padding, groups = geometry[2], geometry[4]
    n = x.shape[0]
    out_hw = _out_hw(x.shape[2:], padding)
    if _blocked(x.shape, w.shape, groups, out_hw, x.dtype.itemsize):
        return blocked.forward(x, w, b, padding, groups), None
    v = wino.input_transform(x, padding, out_hw, device=device)  # (16, C, N*tiles)
    m = wino.tile_array(w.shape[0], v.shape[2], v.dtype, like=v)  # (16, OC, N*tiles)
    backend.matmul(_filters(w, groups, device), _grouped(v, groups), out=_grouped(m, groups))
    return wino.output_transform(m, b, n, out_hw, device=device), v


def prepare_gy(gy, geometry, device):
    """gy as it is: the whole-batch passes make dM = A gy A^T themselves, the blocked ones
    block by block."""
    return gy


def input_grad(gy, w, geometry, n, out_hw, in_hw, device):
    """gx = B (U^T @ dM) B^T: the adjoint of the forward in x."""
    padding, groups = geometry[2], geometry[4]
    x_shape = (n, w.shape[1] * groups, *in_hw)
    if _blocked(x_shape, w.shape, groups, out_hw, gy.dtype.itemsize):
        return blocked.input_grad(gy, w, x_shape, padding, groups)
    return _whole_input_grad(wino.gy_transform(gy, device=device), w, geometry, n, out_hw,
                             in_hw, device)


def weight_grad(x, gy, geometry, w_shape, device, saved=None):
    """gw = G^T (dM @ V^T) G: the adjoint of the forward in w. `saved` is the forward's V,
    transformed again when not given."""
    padding, groups = geometry[2], geometry[4]
    if _blocked_weight_grad(saved, x.shape, w_shape, groups, gy.shape[2:], x.dtype.itemsize):
        return blocked.weight_grad(x, gy, w_shape, padding, groups)
    return _whole_weight_grad(x, wino.gy_transform(gy, device=device), geometry, w_shape,
                              device, saved)


def grads(x, gy, w, geometry, device, saved=None):
    """(gx, gw) together, from one dM (per block, or for the whole batch)."""
    padding, groups = geometry[2], geometry[4]
    if _blocked_weight_grad(saved, x.shape, w.shape, groups, gy.shape[2:], x.dtype.itemsize):
        return blocked.grads(x, gy, w, padding, groups)
    dm = wino.gy_transform(gy, device=device)
    return (_whole_input_grad(dm, w, geometry, x.shape[0], gy.shape[2:], x.shape[2:], device),
            _whole_weight_grad(x, dm, geometry, w.shape, device, saved))


def _whole_input_grad(dm, w, geometry, n, out_hw, in_hw, device):
    padding, groups = geometry[2], geometry[4]
    u_t = _filters(w, groups, device).transpose(0, 1, 3, 2)
    dv = wino.tile_array(w.shape[1] * groups, dm.shape[2], dm.dtype, like=dm)  # (16, C, N*tiles)
    backend.matmul(u_t, _grouped(dm, groups), out=_grouped(dv, groups))
    return wino.input_grad_transform(dv, n, in_hw, padding, out_hw, device=device)


def _whole_weight_grad(x, dm, geometry, w_shape, device, saved):
    padding, groups = geometry[2], geometry[4]
    v = saved
    if v is None:
        v = wino.input_transform(x, padding, _out_hw(x.shape[2:], padding), device=device)
    du = backend.matmul(_grouped(dm, groups), _grouped(v, groups).transpose(0, 1, 3, 2))
    du = du.reshape(du.shape[0], w_shape[0], w_shape[1])  # (16, OC, C/G)
    return wino.filter_grad_transform(du, device=device)
