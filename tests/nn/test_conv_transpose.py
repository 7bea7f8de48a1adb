"""conv_transpose2d / nn.ConvTranspose2d: conv2d's adjoint in its input (ConvInputGrad), against
PyTorch (values and gradients, float32 and float64), gradcheck and gradgradcheck, the
module's init, output_size and repr, and bad arguments."""

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn as nn
import gpugrad.nn.functional as F
from gpugrad import kernels
from gpugrad.autograd import gradcheck, gradgradcheck

# (input shape, weight shape, stride, padding, output_padding, groups, dilation)
CASES = [
    ((2, 4, 5, 6), (4, 3, 3, 3), 1, 0, 0, 1, 1),
    ((2, 4, 5, 6), (4, 3, 3, 3), 2, 1, 1, 1, 1),
    ((1, 6, 4, 3), (6, 2, 3, 2), (2, 3), (1, 0), (1, 2), 3, 1),
    ((2, 2, 5, 5), (2, 3, 3, 3), 2, 1, 0, 1, 2),
    ((1, 8, 6, 6), (8, 8, 3, 3), 1, 1, 0, 1, 1),   # Winograd's shape on the CPU
    ((3, 5, 4), (3, 2, 1, 1), 1, 0, 0, 1, 1),      # unbatched, 1x1
    ((1, 1, 1, 1), (1, 2, 4, 4), 3, 0, 2, 1, 1),   # one pixel, output_padding 2 < stride 3
]


def _pair(rng, xs, ws, groups, dtype):
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[1] * groups).astype(dtype)
    return x, w, b


@pytest.mark.parametrize("algorithm", ["auto", "im2col"])
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 2e-4)])
@pytest.mark.parametrize("xs, ws, stride, padding, out_pad, groups, dilation", CASES)
def test_matches_torch(algorithm, dtype, tol, xs, ws, stride, padding, out_pad, groups,
                       dilation):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    xa, wa, ba = _pair(rng, xs, ws, groups, dtype)
    x, w, b = (gg.tensor(a, requires_grad=True) for a in (xa, wa, ba))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (xa, wa, ba))
    with kernels.conv_algorithm_mode(algorithm):
        y = F.conv_transpose2d(x, w, b, stride, padding, out_pad, groups, dilation)
        ty = torch.nn.functional.conv_transpose2d(tx, tw, tb, stride, padding, out_pad, groups,
                                                  dilation)
        assert y.shape == tuple(ty.shape)
        np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=tol, atol=tol)
        gya = rng.standard_normal(ty.shape).astype(dtype)
        y.backward(gg.tensor(gya))
    ty.backward(torch.tensor(gya))
    for mine, theirs in ((x, tx), (w, tw), (b, tb)):
        np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), rtol=tol,
                                   atol=tol * 10)


@pytest.mark.parametrize("xs, ws, stride, padding, out_pad, groups, dilation",
                         [CASES[1], CASES[2], CASES[3], CASES[5]])
def test_gradcheck_and_gradgradcheck(xs, ws, stride, padding, out_pad, groups, dilation):
    rng = np.random.default_rng(1)
    args = [gg.tensor(a, requires_grad=True) for a in _pair(rng, xs, ws, groups, np.float64)]

    def fn(x, w, b):
        return F.conv_transpose2d(x, w, b, stride, padding, out_pad, groups, dilation)

    assert gradcheck(fn, args)
    assert gradgradcheck(fn, args)


def test_is_the_adjoint_of_conv2d():
    """<conv2d(u, w), v> == <u, conv_transpose2d(v, w)>: the definition, independent of torch."""
    rng = np.random.default_rng(2)
    u = gg.tensor(rng.standard_normal((2, 3, 9, 8)))
    w = gg.tensor(rng.standard_normal((5, 3, 3, 2)))
    y = F.conv2d(u, w, stride=2, padding=1, dilation=(1, 2))
    v = gg.tensor(rng.standard_normal(y.shape))
    back = F.conv_transpose2d(v, w, stride=2, padding=1, dilation=(1, 2),
                              output_padding=(0, 1))
    assert back.shape == u.shape
    np.testing.assert_allclose((y * v).sum().item(), (u * back).sum().item(), rtol=1e-12)


def test_module_matches_torch_init_repr_and_output_size():
    torch = pytest.importorskip("torch")
    gg.manual_seed(0)
    m = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, groups=2, dilation=1)
    t = torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, groups=2)
    assert repr(m) == repr(t)
    assert m.weight.shape == tuple(t.weight.shape) and m.bias.shape == tuple(t.bias.shape)
    bound = 1 / np.sqrt(3 * 3 * 3)  # fan_in: weight dim 1 times the kernel, as PyTorch's
    assert np.abs(m.weight.detach().numpy()).max() <= bound
    with torch.no_grad():
        t.weight.copy_(torch.tensor(m.weight.detach().numpy()))
        t.bias.copy_(torch.tensor(m.bias.detach().numpy()))
    xa = np.random.default_rng(3).standard_normal((2, 4, 5, 5)).astype(np.float32)
    for size in (None, (9, 9), (10, 10), [2, 6, 10, 9]):
        y = m(gg.tensor(xa), output_size=size)
        ty = t(torch.tensor(xa), output_size=size)
        assert y.shape == tuple(ty.shape)
        np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-5,
                                   atol=1e-5)
    with pytest.raises(ValueError, match="valid sizes range from 9 to 10"):
        m(gg.tensor(xa), output_size=(12, 12))
    assert "bias=False" in repr(nn.ConvTranspose2d(2, 2, 1, bias=False))


def test_bad_arguments_name_the_op_and_the_values():
    x, w = gg.ones(1, 4, 3, 3), gg.ones(4, 2, 3, 3)
    with pytest.raises(ValueError, match="conv_transpose2d: expected input with 4 channels"):
        F.conv_transpose2d(gg.ones(1, 3, 3, 3), w)
    with pytest.raises(ValueError, match="output padding must be smaller than either stride"):
        F.conv_transpose2d(x, w, stride=2, output_padding=2)
    with pytest.raises(NotImplementedError, match="output_padding"):
        F.conv_transpose2d(x, w, stride=1, dilation=2, output_padding=1)
    with pytest.raises(ValueError, match="expected bias of shape \\(2,\\)"):
        F.conv_transpose2d(x, w, gg.ones(3))
    with pytest.raises(ValueError, match="in_channels 4 is not divisible by groups 3"):
        F.conv_transpose2d(x, gg.ones(4, 1, 1, 1), groups=3)
    with pytest.raises(ValueError, match="must be positive"):
        F.conv_transpose2d(gg.ones(1, 4, 1, 1), gg.ones(4, 2, 1, 1), padding=1)
    with pytest.raises(TypeError, match="conv_transpose2d: input has dtype float32 but weight"):
        F.conv_transpose2d(x, w.to(gg.float64))
    with pytest.raises(ValueError, match='only "zeros" padding_mode'):
        nn.ConvTranspose2d(2, 2, 3, padding_mode="reflect")
