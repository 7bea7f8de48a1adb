"""The max-pool CUDA kernels under Numba's CUDA simulator, against the reference and CPU twin.

Not collected by a plain ``pytest`` run (the file name does not start with ``test_``):
test_pool_kernels.py runs it in a subprocess with NUMBA_ENABLE_CUDASIM=1, which must be set
before numba.cuda is first imported. The dispatchers get device="cuda" and NumPy arrays. Shapes
stay tiny (the simulator runs one Python thread per CUDA thread) but larger than the simulated
grid of 64 threads, so the grid-stride loops wrap.
"""

import os

import numpy as np
import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    pytest.skip("run through test_pool_kernels.py", allow_module_level=True)

from gpugrad import backend  # noqa: E402
from gpugrad.kernels.pool import (  # noqa: E402
    max_pool2d_backward,
    max_pool2d_backward_reference,
    max_pool2d_forward,
    max_pool2d_reference,
)

# (x shape, kernel, stride, padding, dilation, ceil_mode)
GEOMETRIES = [
    ((2, 2, 6, 7), (2, 2), (2, 2), (0, 0), (1, 1), False),
    ((1, 2, 7, 6), (3, 3), (2, 2), (1, 1), (1, 1), False),
    ((1, 2, 7, 8), (2, 3), (1, 2), (1, 1), (2, 1), True),
    # stride past the kernel (pixels in no window), dilation 3 with padding, a kernel as tall as
    # the padded input: the gather's range of windows per pixel at its edges
    ((1, 2, 9, 8), (2, 3), (3, 4), (1, 1), (3, 1), False),
    ((1, 1, 5, 9), (5, 2), (1, 3), (2, 1), (1, 4), True),
]


@pytest.fixture
def rng():
    return np.random.default_rng(12)


def test_the_simulator_is_what_runs():
    assert backend.uses_simulated_cuda()
    from gpugrad.kernels import pool_cuda

    assert type(pool_cuda.max_pool2d_forward_kernel).__name__ == "FakeCUDAKernel"


@pytest.mark.parametrize("shape, k, s, p, d, ceil", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool2d_forward_and_backward(rng, shape, k, s, p, d, ceil, dtype):
    x = rng.integers(-2, 3, size=shape).astype(dtype)  # many ties
    x.reshape(-1)[[3, 4, 17]] = np.nan
    x.reshape(-1)[[8, 30]] = np.inf
    y, arg = max_pool2d_forward(x, k, s, p, d, device="cuda", ceil_mode=ceil)
    ref_y, ref_arg = max_pool2d_reference(x, k, s, p, d, ceil_mode=ceil)
    np.testing.assert_array_equal(y, ref_y)
    np.testing.assert_array_equal(arg, ref_arg)
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx = max_pool2d_backward(gy, arg, shape[2], shape[3], k, s, p, d, device="cuda",
                             ceil_mode=ceil)
    # The gather adds in output order like the CPU twin's scatter: equal to the bit.
    np.testing.assert_array_equal(
        gx, max_pool2d_backward(gy, arg, shape[2], shape[3], k, s, p, d, ceil_mode=ceil)
    )
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(
        gx, max_pool2d_backward_reference(gy, arg, shape[2], shape[3], k, s, p, d), rtol=rtol
    )


BAD_ARGMAX = [15, -1, 16, 10**9, -(2**63), 2**63 - 1]  # 15: a pixel of window (1, 1)


@pytest.mark.parametrize("bad", BAD_ARGMAX)
def test_the_dispatcher_rejects_an_argmax_outside_its_window(rng, bad):
    x = rng.standard_normal((1, 1, 4, 4))
    y, arg = max_pool2d_forward(x, 2, 2, 0, 1, device="cuda")
    arg[0, 0, 0, 0] = bad
    message = (rf"max_pool2d_backward: 1 argmax entries are not in-image taps of their window "
               rf"\(the first is argmax\[0, 0, 0, 0\] = {bad}\)")
    for device in ("cuda", "cpu"):  # the same check, the same message
        with pytest.raises(ValueError, match=message):
            max_pool2d_backward(np.ones_like(y), arg, 4, 4, 2, 2, 0, 1, device=device)


@pytest.mark.parametrize("bad", BAD_ARGMAX)
def test_unchecked_gather_skips_an_argmax_outside_its_window(rng, bad):
    # check_argmax=False (autograd's own argmax): the kernel stays in bounds and the entry's
    # gradient is lost, as on the CPU twin.
    x = rng.standard_normal((1, 1, 6, 6))
    y, arg = max_pool2d_forward(x, 3, 2, 1, 1, device="cuda")
    arg[0, 0, 0, 0] = bad
    gy = np.ones_like(y)
    gx = max_pool2d_backward(gy, arg, 6, 6, 3, 2, 1, 1, device="cuda", check_argmax=False)
    assert gx.sum() == gy.sum() - 1
    np.testing.assert_array_equal(
        gx, max_pool2d_backward(gy, arg, 6, 6, 3, 2, 1, 1, check_argmax=False)
    )


def test_huge_padding_and_kernel(rng):
    # Each window spans its whole column. The forward used to walk 2**30 steps out of the
    # padding per thread, and the gather looped over all 2**31 - 1 taps of the kernel.
    p = 2**30 - 1
    k = (2 * p + 1, 1)
    x = rng.standard_normal((1, 2, 4, 3))
    y, arg = max_pool2d_forward(x, k, 1, (p, 0), 1, device="cuda")
    cpu_y, cpu_arg = max_pool2d_forward(x, k, 1, (p, 0), 1)
    np.testing.assert_array_equal(y, cpu_y)
    np.testing.assert_array_equal(arg, cpu_arg)
    gy = rng.standard_normal(y.shape)
    np.testing.assert_array_equal(
        max_pool2d_backward(gy, arg, 4, 3, k, 1, (p, 0), 1, device="cuda"),
        max_pool2d_backward(gy, arg, 4, 3, k, 1, (p, 0), 1),
    )
    with pytest.raises(ValueError, match=r"max_pool2d: padding \(2147483648, 0\) is too large"):
        max_pool2d_forward(x, (2**31 - 1, 1), 1, (2**31, 0), 1, device="cuda")


def test_autograd_max_pool2d_on_the_cuda_device(rng):
    import gpugrad as gg
    from gpugrad.ops.pool import max_pool2d

    x_np = rng.permutation(2 * 3 * 6 * 6).reshape(2, 3, 6, 6).astype(np.float64)
    x = gg.tensor(x_np, device="cuda", requires_grad=True)
    y, idx = max_pool2d(x, 3, 2, 1, return_indices=True)
    assert y.device == gg.device("cuda")
    (y * y).sum().backward()
    x_cpu = gg.tensor(x_np, requires_grad=True)
    y_cpu, idx_cpu = max_pool2d(x_cpu, 3, 2, 1, return_indices=True)
    (y_cpu * y_cpu).sum().backward()
    np.testing.assert_array_equal(y.numpy(), y_cpu.numpy())
    np.testing.assert_array_equal(idx.numpy(), idx_cpu.numpy())
    np.testing.assert_array_equal(x.grad.numpy(), x_cpu.grad.numpy())
