"""conv2d by Winograd F(2x2, 3x3): for 3x3, stride-1, undilated convolutions on the CPU.

16 GEMMs of (K x C) @ (C x tiles), one per position in the 4x4 transformed tile, do 2.25x fewer
multiply-adds than im2col's one GEMM (the algorithm and the transforms: kernels/conv_winograd.py).
    forward      V = B^T x B,  M = U @ V,  y = A^T M A (+ b)          U = G w G^T
    prepare_gy   dM = A gy A^T
    input_grad   gx = B (U^T @ dM) B^T, summed over overlapping patches
    weight_grad  gw = G^T (dM @ V^T) G
A batch of two or more images runs each pass block by block, a few images at a time, so the
tile arrays stay in cache (kernels/conv_winograd_blocked.py); `grads` then makes each block's
dM once for both gradients. A single image runs each step over the whole batch instead (there
is only one block to share between threads), every product one batched GEMM over the 16
positions and the groups (backend.matmul: the batch split across threads, one BLAS thread
each). Same five functions as ``conv_gemm``; ``ops/conv.py`` chooses between them.
"""

from __future__ import annotations

from gpugrad import backend
from gpugrad.kernels import conv_winograd as wino
from gpugrad.kernels import conv_winograd_blocked as blocked

NAME = "winograd"
# From this many images, passes go block by block (blocks of whole images).
BLOCKED_MIN_IMAGES = 2


def _blocked(n_img: int) -> bool:
    return n_img >= BLOCKED_MIN_IMAGES


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


def forward(x, w, b, geometry, device):
    """y (N, OC, oh, ow) and what weight_grad reuses: V for a single image (blocks transform
    their images again: cheaper than keeping V, 4.4x the input's size)."""
    padding, groups = geometry[2], geometry[4]
    if _blocked(x.shape[0]):
        return blocked.forward(x, w, b, padding, groups), None
    n, c = x.shape[:2]
    out_hw = _out_hw(x.shape[2:], padding)
    v = wino.input_transform(x, padding, out_hw, device=device)  # (16, C, N*tiles)
    m = wino.tile_array(w.shape[0], v.shape[2], v.dtype, like=v)  # (16, OC, N*tiles)
    backend.matmul(_filters(w, groups, device), _grouped(v, groups),
                         out=_grouped(m, groups))
    return wino.output_transform(m, b, n, out_hw, device=device), v


def prepare_gy(gy, geometry, device):
    """dM = A gy A^T per tile, (16, OC, N*tiles), for a single image; blocked passes take gy
    as it is and transform it block by block."""
    if _blocked(gy.shape[0]):
        return gy
    return wino.gy_transform(gy, device=device)


def input_grad(dm, w, geometry, n, out_hw, in_hw, device):
    """gx = B (U^T @ dM) B^T: the adjoint of the forward in x."""
    padding, groups = geometry[2], geometry[4]
    if _blocked(n):
        return blocked.input_grad(dm, w, (n, w.shape[1] * groups, *in_hw), padding, groups)
    u_t = _filters(w, groups, device).transpose(0, 1, 3, 2)
    dv = wino.tile_array(w.shape[1] * groups, dm.shape[2], dm.dtype, like=dm)  # (16, C, N*tiles)
    backend.matmul(u_t, _grouped(dm, groups), out=_grouped(dv, groups))
    return wino.input_grad_transform(dv, n, in_hw, padding, out_hw, device=device)


def weight_grad(x, dm, geometry, w_shape, device, saved=None):
    """gw = G^T (dM @ V^T) G: the adjoint of the forward in w. `saved` is the forward's V,
    transformed again when not given."""
    padding, groups = geometry[2], geometry[4]
    if _blocked(x.shape[0]):
        return blocked.weight_grad(x, dm, w_shape, padding, groups)
    v = saved
    if v is None:
        v = wino.input_transform(x, padding, _out_hw(x.shape[2:], padding), device=device)
    du = backend.matmul(_grouped(dm, groups), _grouped(v, groups).transpose(0, 1, 3, 2))
    du = du.reshape(du.shape[0], w_shape[0], w_shape[1])  # (16, OC, C/G)
    return wino.filter_grad_transform(du, device=device)


def grads(x, gy, w, geometry, device, saved=None):
    """(gx, gw) together: blocked passes make each block's dM once for both."""
    padding, groups = geometry[2], geometry[4]
    if _blocked(x.shape[0]):
        return blocked.grads(x, gy, w, padding, groups)
    dm = prepare_gy(gy, geometry, device)
    return (input_grad(dm, w, geometry, x.shape[0], gy.shape[2:], x.shape[2:], device),
            weight_grad(x, dm, geometry, w.shape, device, saved))
