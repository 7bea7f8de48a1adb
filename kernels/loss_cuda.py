"""CUDA kernels for the fused softmax cross-entropy; see kernels/loss.py for the math.

Imported on the first CUDA call only (it imports numba.cuda). The forward gives each row a block
of ROW_THREADS threads (grid-stride over rows) and reduces in shared memory in a fixed tree
order (deterministic); the backward is
elementwise, one thread per logit, so it stays efficient for 10 classes as for 10,000.
"""

from __future__ import annotations

import math

from numba import cuda, types

from gpugrad.kernels._launch import launch_elementwise, launch_rows

# Threads per row in the forward; a power of two (the tree reductions halve it).
ROW_THREADS = 128


@cuda.jit
def softmax_cross_entropy_forward_kernel(
    logits, target, weight, weight_sum, ignore_index, on_target, off_target,
    row_max, row_log_sum, row_loss, row_weight,
):  # fmt: skip
    """Per row: max, log-sum-exp and the (smoothed, weighted) loss, in one block."""
    n_rows, n_cls = logits.shape
    zero = logits.dtype.type(0)
    smoothing = off_target != zero
    # The reductions are written out here rather than as device functions: compile_ptx cannot
    # compile a device function without a GPU present (it asks the driver for the cc).
    buf_max = cuda.shared.array(ROW_THREADS, dtype=logits.dtype)
    buf_sum = cuda.shared.array(ROW_THREADS, dtype=logits.dtype)
    buf_gap = cuda.shared.array(ROW_THREADS, dtype=logits.dtype)
    tid = cuda.threadIdx.x
    for i in range(cuda.blockIdx.x, n_rows, cuda.gridDim.x):
        m = logits.dtype.type(-math.inf)
        for j in range(tid, n_cls, ROW_THREADS):
            v = logits[i, j]
            # NaN never wins a comparison; it shows up in the sum of exps below instead.
            m = v if v > m else m
        buf_max[tid] = m
        # Every partial max must be in shared memory before the tree reads it.
        cuda.syncthreads()
        step = ROW_THREADS // 2
        while step > 0:
            if tid < step and buf_max[tid + step] > buf_max[tid]:
                buf_max[tid] = buf_max[tid + step]
            # The next level reads what this level wrote.
            cuda.syncthreads()
            step //= 2
        m = buf_max[0]

        s = zero
        gap = zero
        for j in range(tid, n_cls, ROW_THREADS):
            v = logits[i, j]
            s += math.exp(v - m)
            if smoothing:
                # w[c] * (m - x[c]) >= 0: nothing cancels at large logits.
                gap += weight[j] * (m - v)
        buf_sum[tid] = s
        buf_gap[tid] = gap
        # Every partial sum must be in shared memory before the tree reads it (and every
        # thread has read buf_max[0] by now, so the next row may overwrite it).
        cuda.syncthreads()
        step = ROW_THREADS // 2
        while step > 0:
            if tid < step:
                buf_sum[tid] += buf_sum[tid + step]
                buf_gap[tid] += buf_gap[tid + step]
            # The next level reads what this level wrote.
            cuda.syncthreads()
            step //= 2

        if tid == 0:
            log_s = math.log(buf_sum[0])
            row_max[i] = m
            row_log_sum[i] = log_s
            t = target[i]
            if t == ignore_index:
                row_loss[i] = zero
                row_weight[i] = zero
            else:
                wt = weight[t]
                # lse - x[t] as (m - x[t]) + log_s: exact differences first.
                loss = on_target * wt * ((m - logits[i, t]) + log_s)
                if smoothing:
                    loss += off_target * (buf_gap[0] + log_s * weight_sum[0])
                row_loss[i] = loss
                row_weight[i] = wt


@cuda.jit
def softmax_cross_entropy_backward_kernel(
    logits, target, weight, weight_sum, ignore_index, on_target, off_target,
    lse_hi, lse_lo, scale, gx,
):  # fmt: skip
    """One thread per logit: (softmax * coef - target distribution) * scale, 0 on ignored rows."""
    n_rows, n_cls = logits.shape
    zero = logits.dtype.type(0)
    per_row = scale.shape[0] > 1
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for k in range(start, n_rows * n_cls, step):
        i = k // n_cls
        j = k - i * n_cls
        t = target[i]
        if t == ignore_index:
            gx[i, j] = zero
            continue
        sc = scale[i] if per_row else scale[0]
        wt = weight[t]
        p = math.exp((logits[i, j] - lse_hi[i]) - lse_lo[i])
        g = p * (on_target * wt + off_target * weight_sum[0]) - off_target * weight[j]
        if j == t:
            g -= on_target * wt
        gx[i, j] = g * sc


def softmax_cross_entropy_forward(
    logits, target, weight, weight_sum, ignore_index, on_target, off_target,
    row_max, row_log_sum, row_loss, row_weight, device,
) -> None:  # fmt: skip
    launch_rows(
        softmax_cross_entropy_forward_kernel, logits.shape[0], ROW_THREADS, device,
        logits, target, weight, weight_sum, ignore_index, on_target, off_target,
        row_max, row_log_sum, row_loss, row_weight,
    )  # fmt: skip


def softmax_cross_entropy_backward(
    logits, target, weight, weight_sum, ignore_index, on_target, off_target,
    lse_hi, lse_lo, scale, gx, device,
) -> None:  # fmt: skip
    launch_elementwise(
        softmax_cross_entropy_backward_kernel, gx.size, device,
        logits, target, weight, weight_sum, ignore_index, on_target, off_target,
        lse_hi, lse_lo, scale, gx,
    )  # fmt: skip


def signatures(dtype):
    """(name, kernel, argument types) for each kernel as the dispatchers launch it."""
    f = types.float64 if dtype == "float64" else types.float32
    i = types.int64
    m2 = types.Array(f, 2, "C")
    v = types.Array(f, 1, "C")
    labels = types.Array(i, 1, "C")
    return [
        (
            "softmax_cross_entropy_forward_kernel",
            softmax_cross_entropy_forward_kernel,
            (m2, labels, v, v, i, f, f, v, v, v, v),
        ),
        (
            "softmax_cross_entropy_backward_kernel",
            softmax_cross_entropy_backward_kernel,
            (m2, labels, v, v, i, f, f, v, v, v, m2),
        ),
    ]
