"""conv2d's general algorithm: im2col + one GEMM per group over the whole batch.

The columns are built channel-major, (C*kh*kw, N*oh*ow), so each GEMM covers every image at
once: one large product is faster than N small ones (bench/results/kernels-cpu.json).
    forward      y  = W @ im2col(x) (+ b)
    input_grad   gx = col2im(W^T @ gy)
    weight_grad  gw = gy @ im2col(x)^T
This module and ``conv_winograd`` offer the same five functions (grads: both gradients); ``ops/conv.py`` picks one per
convolution and owns the autograd Functions.
"""

from __future__ import annotations

from gpugrad import backend
from gpugrad.kernels import conv as conv_kernels

NAME = "im2col"

# Whether the forward keeps its columns (kh*kw times the input) for the weight gradient, by
# device type. On the CPU building them again cost 15% of a ResNet-18 step (batch 16, im2col
# only) and host memory is plentiful; on a GPU memory is what bounds the batch, the columns
# were most of a ResNet-18 step's peak (3.75 GB at batch 128 against PyTorch's 0.79 GB), and
# im2col runs at two thirds of the copy bandwidth, so the backward builds them again there.
KEEP_COLUMNS = {"cpu": True, "cuda": False}


def _columns(x, geometry, device):
    """im2col of x in the channel layout, as (groups, C/groups*kh*kw, N*out_h*out_w)."""
    kernel, stride, padding, dilation, groups = geometry
    cols = conv_kernels.im2col(x, kernel, stride, padding, dilation, device=device,
                               layout="channel")
    c, kh, kw, n, oh, ow = cols.shape
    return cols.reshape(groups, (c // groups) * kh * kw, n * oh * ow), (oh, ow)


def _grouped_weight(w, groups):
    oc = w.shape[0]
    return w.reshape(groups, oc // groups, -1)


def forward(x, w, b, geometry, device):
    """y (N, OC, oh, ow) and the columns for weight_grad (None where KEEP_COLUMNS says to
    build them again)."""
    groups = geometry[4]
    cols, (oh, ow) = _columns(x, geometry, device)
    n, oc = x.shape[0], w.shape[0]
    y_cm = backend.matmul(_grouped_weight(w, groups), cols)  # (G, OC/G, N*P), channel-major
    # Back to NCHW in one pass that also adds the bias.
    y = conv_kernels.to_nchw(y_cm.reshape(oc, n, oh, ow), b, device=device)
    return y, (cols if KEEP_COLUMNS[backend.as_device(device).type] else None)


def prepare_gy(gy, geometry, device):
    """gy (N, OC, oh, ow) as (groups, N*oh*ow, OC/groups): a row per output pixel (NHWC).

    Both gradient GEMMs read gy this way: gw = cols @ rows runs at 230 GFLOP/s on the bench
    machine where rows^T @ cols^T (the same product) ran at 160; W^T @ rows^T is as fast as
    with a channel-major gy."""
    groups = geometry[4]
    n, oc, oh, ow = gy.shape
    rows = conv_kernels.to_nhwc(gy, device=device)
    return rows.reshape(n * oh * ow, groups, oc // groups).transpose(1, 0, 2)


def input_grad(gy_rows, w, geometry, n, out_hw, in_hw, device):
    """gx = col2im(W^T @ gy): the adjoint of the forward in x. gy_rows from prepare_gy."""
    kernel, stride, padding, dilation, groups = geometry
    w_t = _grouped_weight(w, groups).transpose(0, 2, 1)
    gcols = backend.matmul(w_t, gy_rows.transpose(0, 2, 1))  # (G, CKK/G, N*P)
    c = w.shape[1] * groups
    gcols = gcols.reshape(c, kernel[0], kernel[1], n, out_hw[0], out_hw[1])
    return conv_kernels.col2im(gcols, in_hw[0], in_hw[1], stride, padding, dilation,
                               device=device, layout="channel")


def weight_grad(x, gy_rows, geometry, w_shape, device, saved=None):
    """gw = gy @ im2col(x)^T over all images at once: the adjoint of the forward in w.
    `saved` is the forward's columns, built again when not given."""
    cols = saved
    if cols is None:
        cols, _ = _columns(x, geometry, device)
    xp = backend.array_module(gy_rows)
    gw_t = backend.matmul(cols, gy_rows)  # (G, CKK/G, OC/G)
    return xp.ascontiguousarray(gw_t.transpose(0, 2, 1)).reshape(w_shape)


def grads(x, gy, w, geometry, device, saved=None):
    """(gx, gw) together, reading gy in its NHWC form built once."""
    rows = prepare_gy(gy, geometry, device)
    return (input_grad(rows, w, geometry, x.shape[0], gy.shape[2:], x.shape[2:], device),
            weight_grad(x, rows, geometry, w.shape, device, saved))
