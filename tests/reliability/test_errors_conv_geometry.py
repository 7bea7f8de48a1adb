"""Convolution geometry that used to slip through: values past int64 (Numba typed them uint64 and
im2col returned zeros), floats and strings truncated by int(), columns too large to allocate,
weights without output channels, integer inputs and groups=True. Each must raise naming the op
the user called and the bad value, or behave as PyTorch does (found by fuzzing the kernels and
F.conv2d / F.avg_pool2d)."""

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.kernels as K
from gpugrad import backend, nn
from gpugrad.kernels import conv as conv_kernels
from gpugrad.nn import functional as F
from gpugrad.ops import conv as conv_op

BIG = 2**63  # one past int64


@pytest.fixture
def x_np():
    return np.arange(1, 17, dtype=np.float32).reshape(1, 1, 4, 4)


def _conv(**kwargs):
    return F.conv2d(gg.randn(1, 2, 6, 6), gg.randn(3, 2, 2, 2), **kwargs)


# ----------------------------------------------------------------------------- int64 limits


@pytest.mark.parametrize("name", ["stride", "dilation", "padding"])
@pytest.mark.parametrize("value", [BIG, 2**64, 2**70])
def test_kernel_geometry_past_int64_raises(x_np, name, value):
    geometry = {"kernel_size": (2, 2), "stride": (1, 1), "padding": (0, 0), "dilation": (1, 1)}
    geometry[name] = (value, 1)
    with pytest.raises(ValueError, match=rf"im2col: {name} must fit in int64 .*got \({value}, 1\)"):
        K.im2col(x_np, **geometry)
    cols = np.zeros((1, 1, 2, 2, 3, 3), np.float32)
    geometry.pop("kernel_size")
    with pytest.raises(ValueError, match=rf"col2im: {name} must fit in int64 .*{value}"):
        K.col2im(cols, 4, 4, **geometry)


@pytest.mark.parametrize("reference", [False, True])
def test_largest_int64_stride_still_works(x_np, reference):
    # Stride 2**63 - 1 is a valid (if odd) geometry: one window, at the origin.
    with K.reference_mode(reference):
        cols = K.im2col(x_np, (2, 2), (BIG - 1, BIG - 1), (0, 0), (1, 1))
        np.testing.assert_array_equal(cols.ravel(), [1, 2, 5, 6])
        back = K.col2im(cols, 4, 4, (BIG - 1, BIG - 1), (0, 0), (1, 1))
        assert back.sum() == 14


def test_f_conv2d_and_avg_pool2d_reject_strides_past_int64():
    # PyTorch: "ValueError: Overflow when unpacking long long".
    with pytest.raises(ValueError, match=r"conv2d: stride must fit in int64"):
        _conv(stride=BIG)
    with pytest.raises(ValueError, match=r"conv2d: dilation must fit in int64"):
        _conv(dilation=(1, 2**64))
    with pytest.raises(ValueError, match=r"avg_pool2d: stride must fit in int64"):
        F.avg_pool2d(gg.randn(1, 1, 4, 4), 2, stride=BIG)
    assert _conv(stride=BIG - 1).shape == (1, 3, 1, 1)


def test_padding_whose_padded_input_passes_int64_raises(x_np):
    # PyTorch: "expected padding to be at most 4611686018427387903".
    pattern = r"padding 4611686018427387904 along H makes the padded input 9223372036854775812"
    with pytest.raises(ValueError, match=f"im2col: {pattern}"):
        K.im2col(x_np, (1, 1), (2**62, 1), (2**62, 0), (1, 1))
    with pytest.raises(ValueError, match=f"conv2d: {pattern}"):
        F.conv2d(gg.from_numpy(x_np), gg.ones(1, 1, 1, 1), stride=(2**62, 1), padding=(2**62, 0))


def test_huge_padding_with_a_huge_stride_gives_pytorch_s_answer(x_np):
    torch = pytest.importorskip("torch")
    kwargs = {"stride": (1, 2**41), "padding": (1, 2**40), "dilation": (1, 3)}
    x = gg.tensor(x_np, requires_grad=True)
    w = gg.tensor(np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2), requires_grad=True)
    y = F.conv2d(x, w, **kwargs)
    y.sum().backward()
    xt = torch.tensor(x_np, requires_grad=True)
    wt = torch.tensor(w.numpy(), requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, **kwargs)
    yt.sum().backward()
    np.testing.assert_array_equal(y.numpy(), yt.detach().numpy())
    np.testing.assert_array_equal(x.grad.numpy(), xt.grad.numpy())
    np.testing.assert_array_equal(w.grad.numpy(), wt.grad.numpy())


# ----------------------------------------------------------------------------- array sizes


@pytest.mark.parametrize("reference", [False, True])
def test_columns_no_array_can_hold_raise_naming_the_op_and_shape(x_np, reference):
    with K.reference_mode(reference):
        with pytest.raises(ValueError, match=r"im2col: the (columns|padded input) would have "
                                             r"shape \(1, 1, .*more than an array can hold"):
            K.im2col(x_np, (1, 1), (1, 1), (2**40, 2**40), (1, 1))
        with pytest.raises(ValueError, match=r"col2im: the (image|padded image) would have shape "
                                             r"\(1, 1, 1099511627776, 1099511627776\)"):
            K.col2im(np.zeros((1, 1, 1, 1, 1, 1), np.float32), 2**40, 2**40, (2**41, 2**41),
                     (0, 0), (1, 1))
    with pytest.raises(ValueError, match=r"conv2d: the im2col columns would have shape "
                                         r"\(1, 1, 1, 1, 2199023255556, 2199023255556\)"):
        F.conv2d(gg.from_numpy(x_np), gg.ones(1, 1, 1, 1), padding=2**40)


def test_failed_allocations_are_reported_with_the_op_and_shape(x_np, monkeypatch):
    """NumPy's own error (or CuPy's) stays in the message, after the op and the shape. The
    allocation is made to fail here: a real 14.6 TiB request may succeed where memory is
    overcommitted."""

    def fail(shape, dtype, like):
        raise MemoryError("Unable to allocate 14.6 TiB")

    monkeypatch.setattr(backend, "empty", fail)
    pattern = r"cannot allocate the columns, shape \(1, 1, 1, 1, 2000004, 2000004\) " \
              r"\(float32, 14.6 TiB\): Unable to allocate"
    with pytest.raises(MemoryError, match=f"im2col: {pattern}"):
        K.im2col(x_np, (1, 1), (1, 1), (10**6, 10**6), (1, 1))
    with pytest.raises(MemoryError, match=r"conv2d: out of memory for input \(1, 1, 4, 4\), "
                                          r"weight \(1, 1, 1, 1\).*padding \(1000000, 1000000\)"
                                          r".*im2col: cannot allocate"):
        F.conv2d(gg.from_numpy(x_np), gg.ones(1, 1, 1, 1), padding=10**6)
    with pytest.raises(MemoryError, match=r"avg_pool2d: out of memory for the im2col columns"):
        conv_op.im2col(gg.from_numpy(x_np), (1, 1), (1, 1), (10**6, 10**6), (1, 1),
                       op="avg_pool2d")
    with pytest.raises(MemoryError, match=r"col2im: cannot allocate the image, shape "
                                          r"\(1, 1, 4, 4\)"):
        K.col2im(np.zeros((1, 1, 2, 2, 3, 3), np.float32), 4, 4, (1, 1), (0, 0), (1, 1))


# ----------------------------------------------------------------------------- value types


@pytest.mark.parametrize("kwargs, pattern", [
    ({"stride": (2.9, 1)}, r"stride must be an int or a pair of ints \(h, w\), got float 2.9"),
    ({"stride": 2.0}, r"stride must be an int or a pair of ints \(h, w\), got float 2.0"),
    ({"stride": "21"}, r"stride must be an int or a pair of ints \(h, w\), got str '21'"),
    ({"stride": True}, r"stride .* got bool True"),
    ({"stride": (1, False)}, r"stride .* got bool False in \(1, False\)"),
    ({"stride": None}, r"stride .* got NoneType None"),
    ({"padding": 1.0}, r"padding .* got float 1.0"),
    ({"padding": (np.float64(1), 0)}, r"padding .* got float64 np.float64\(1.0\)"),
    ({"dilation": (1, 1, 1)}, r"dilation .* got tuple \(1, 1, 1\)"),
    ({"groups": True}, r"groups must be an int, got bool True"),
    ({"groups": 1.0}, r"groups must be an int, got float 1.0"),
    ({"groups": "1"}, r"groups must be an int, got str '1'"),
])
def test_non_integer_geometry_raises_type_error_as_in_pytorch(kwargs, pattern):
    with pytest.raises(TypeError, match=f"conv2d: {pattern}"):
        _conv(**kwargs)
    torch = pytest.importorskip("torch")
    with pytest.raises((TypeError, RuntimeError)):
        torch.nn.functional.conv2d(torch.randn(1, 2, 6, 6), torch.randn(3, 2, 2, 2), **kwargs)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"padding": "full"}, r"invalid padding string 'full', should be one of 'valid', 'same'"),
    ({"groups": 0}, r"groups must be >= 1, got 0"),
    ({"groups": -2}, r"groups must be >= 1, got -2"),
    ({"groups": BIG}, r"groups must fit in int64"),
    ({"groups": np.int64(3)}, r"expected input with 6 channels .* groups=3\), got 2 channels"),
    ({"groups": 4}, r"expected weight with at least groups=4 output channels"),
])
def test_bad_padding_strings_and_groups_raise_value_error(kwargs, pattern):
    with pytest.raises(ValueError, match=f"conv2d: {pattern}"):
        _conv(**kwargs)


def test_out_channels_not_divisible_by_groups():
    with pytest.raises(ValueError, match=r"conv2d: out_channels 3 is not divisible by groups 2"):
        F.conv2d(gg.randn(1, 4, 4, 4), gg.randn(3, 2, 2, 2), groups=2)


def test_numpy_integers_are_accepted_as_in_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 7, 6)).astype(np.float32)
    w = rng.standard_normal((4, 2, 3, 2)).astype(np.float32)
    kwargs = {"stride": (np.int64(2), np.uint8(1)), "padding": np.int32(1),
              "dilation": (np.int16(1), 2), "groups": np.int64(2)}
    y = F.conv2d(gg.tensor(x), gg.tensor(w), **kwargs)
    expected = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), **kwargs)
    np.testing.assert_allclose(y.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


def test_nn_conv2d_checks_its_arguments_the_same_way():
    with pytest.raises(TypeError, match=r"Conv2d: groups must be an int, got bool True"):
        nn.Conv2d(2, 2, 3, groups=True)
    with pytest.raises(TypeError, match=r"Conv2d: stride .* got float 2.5"):
        nn.Conv2d(2, 2, 3, stride=2.5)
    with pytest.raises(TypeError, match=r"Conv2d: in_channels must be an int, got float 2.0"):
        nn.Conv2d(2.0, 2, 3)
    with pytest.raises(ValueError, match=r"Conv2d: kernel_size must fit in int64"):
        nn.Conv2d(2, 2, BIG)
    m = nn.Conv2d(np.int64(2), 4, (np.int64(3), 1), stride=np.int32(2))
    assert m.kernel_size == (3, 1) and m.stride == (2, 2) and m.in_channels == 2
    assert type(m.in_channels) is int and type(m.kernel_size[0]) is int


# ----------------------------------------------------------------------------- weights and dtypes


def test_weight_without_output_channels_raises_as_in_pytorch():
    # PyTorch 2.13: "Given groups=1, expected weight to be at least 1 at dimension 0, but got
    # weight of size [0, 4, 3, 3] instead" (a RuntimeError).
    pattern = r"conv2d: expected weight with at least groups=(1|2) output channels \(dim 0\), " \
              r"got weight of shape \(0, (4|2), 3, 3\)"
    with pytest.raises(ValueError, match=pattern):
        F.conv2d(gg.zeros(1, 4, 5, 5), gg.zeros(0, 4, 3, 3))
    with pytest.raises(ValueError, match=pattern):
        F.conv2d(gg.zeros(4, 5, 5), gg.zeros(0, 4, 3, 3), gg.zeros(0))
    with pytest.raises(ValueError, match=pattern):
        F.conv2d(gg.zeros(1, 4, 5, 5), gg.zeros(0, 2, 3, 3), groups=2)
    with pytest.raises(ValueError, match=pattern):
        with pytest.warns(UserWarning, match="zero-element"):  # it builds, as in PyTorch
            module = nn.Conv2d(4, 0, 3)
        module(gg.zeros(1, 4, 5, 5))
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError, match="expected weight to be at least 1 at dimension 0"):
        torch.nn.functional.conv2d(torch.zeros(1, 4, 5, 5), torch.zeros(0, 4, 3, 3))


def test_empty_kernel_in_the_weight_raises():
    with pytest.raises(ValueError, match=r"conv2d: kernel size must be >= 1, got weight of shape "
                                         r"\(2, 4, 0, 3\)"):
        F.conv2d(gg.zeros(1, 4, 5, 5), gg.zeros(2, 4, 0, 3))


@pytest.mark.parametrize("dtype", [gg.int64, gg.int32, gg.float16, gg.bool])
def test_conv2d_on_a_non_float_input_names_conv2d_and_both_dtypes(dtype):
    x = gg.zeros(1, 8, 4, 4, dtype=dtype)
    for w in (gg.zeros(1, 8, 2, 2, dtype=dtype), gg.zeros(8, 8, 3, 3, dtype=dtype)):  # Winograd
        with pytest.raises(TypeError, match=rf"conv2d: expected a float32 or float64 input, got "
                                            rf"{np.dtype(dtype)}"):
            F.conv2d(x, w)


def test_pooling_on_a_non_float_input_names_the_dtypes():
    # ops.conv.im2col names the op it is given; avg_pool2d names itself once it passes op=.
    with pytest.raises(TypeError, match=r"avg_pool2d: expected a float32 or float64 input, "
                                        r"got int64"):
        conv_op.im2col(gg.zeros(1, 1, 4, 4, dtype=gg.int64), (2, 2), (2, 2), (0, 0), (1, 1),
                       op="avg_pool2d")
    with pytest.raises(TypeError, match=r"(avg_pool2d|im2col): expected a float32 or float64 "
                                        r"input, got float16"):
        F.avg_pool2d(gg.zeros(1, 1, 4, 4, dtype=gg.float16), 2)


# ----------------------------------------------------------------------------- im2col's pad_value


@pytest.mark.parametrize("pad_value, pattern", [
    (None, "got NoneType None"),
    ("a", "got str 'a'"),
    (np.array([1.0, 2.0]), "got ndarray"),
    (True, "got bool True"),
])
def test_im2col_pad_value_must_be_a_real_number(x_np, pad_value, pattern):
    for reference in (False, True):
        with K.reference_mode(reference), pytest.raises(
            TypeError, match=f"im2col: pad_value must be a real number, {pattern}"
        ):
            K.im2col(x_np, (2, 2), (1, 1), (1, 1), (1, 1), pad_value=pad_value)


@pytest.mark.parametrize("pad_value", [np.float32(-np.inf), -np.inf, 3, np.int8(-2)])
def test_im2col_pad_value_accepts_python_and_numpy_scalars(x_np, pad_value):
    cols = K.im2col(x_np, (2, 2), (1, 1), (1, 1), (1, 1), pad_value=pad_value)
    assert cols[0, 0, 0, 0, 0, 0] == pad_value


# ----------------------------------------------------------------------------- conv_output_size


@pytest.mark.parametrize("args, error, pattern", [
    ((4, 2, -1, 0, 1), ValueError, r"stride must be >= 1, got -1"),
    ((4, 2, 0, 0, 1), ValueError, r"stride must be >= 1, got 0"),
    ((4, 0, 1, 0, 1), ValueError, r"kernel size must be >= 1, got 0"),
    ((4, 2, 1, 0, 0), ValueError, r"dilation must be >= 1, got 0"),
    ((4, 2, 1, -1, 1), ValueError, r"padding must be >= 0, got -1"),
    ((-1, 2, 1, 0, 1), ValueError, r"in_size must be >= 0, got -1"),
    ((4, 2, 1.5, 0, 1), TypeError, r"stride must be an int, got float 1.5"),
    ((4, 2, True, 0, 1), TypeError, r"stride must be an int, got bool True"),
    ((4, 2, BIG, 0, 1), ValueError, r"stride must fit in int64"),
    ((4, 2, 1, 2**62, 1), ValueError, r"padding 4611686018427387904 makes the padded input"),
    ((4, 3, 1, 0, 2), ValueError, (r"kernel size 5 \(kernel 3, dilation 2\) is larger than "
                                   r"the padded input 4 \(input 4, padding 0\)")),
])
def test_conv_output_size_checks_its_arguments(args, error, pattern):
    with pytest.raises(error, match=f"conv_output_size: {pattern}"):
        K.conv_output_size(*args)


def test_conv_output_size_on_the_edges():
    assert K.conv_output_size(4, 3, 1, 0, 1) == 2
    assert K.conv_output_size(0, 3, 1, 2, 1) == 2  # all padding
    assert K.conv_output_size(np.int64(7), np.int32(3), 2, 1, 1) == 4
    assert K.conv_output_size(4, 1, BIG - 1, 0, 1) == 1
    assert type(K.conv_output_size(np.int64(7), 3, 1, 1, 1)) is int
    assert conv_kernels.INT64_MAX == np.iinfo(np.int64).max
