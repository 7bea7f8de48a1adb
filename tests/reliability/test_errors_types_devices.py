"""dtypes, devices and data: mismatches raise naming the op and both sides; integer tensors never
require grad; nested lists must be rectangular; creation functions check their sizes.

No GPU is needed: a CPU tensor tagged `cuda:0` (the `on_fake_cuda` fixture) is enough, since
every device check compares the tags before touching any array.
"""

import re

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import nn
from gpugrad.nn import functional as F

DEVICE_PAIR = r"(cpu.*cuda:0|cuda:0.*cpu)"


# ----------------------------------------------------------------------------- dtypes

def test_matmul_and_conv_dtype_mismatch_name_both_dtypes():
    with pytest.raises((RuntimeError, TypeError), match=r"matmul.*float32.*float64"):
        gg.randn(2, 3) @ gg.randn(3, 2, dtype=gg.float64)
    with pytest.raises((RuntimeError, TypeError), match=r"conv2d.*float32.*float64"):
        F.conv2d(gg.randn(1, 3, 8, 8), gg.randn(4, 3, 3, 3, dtype=gg.float64))
    with pytest.raises((RuntimeError, TypeError), match=r"conv2d.*bias.*float64"):
        F.conv2d(gg.randn(1, 3, 8, 8), gg.randn(4, 3, 3, 3), gg.zeros(4, dtype=gg.float64))


def test_elementwise_dtypes_promote_as_in_pytorch():
    # Not an error in PyTorch either: float32 + float64 -> float64, int + float -> float.
    assert (gg.randn(2) + gg.randn(2, dtype=gg.float64)).dtype == gg.float64
    assert (gg.arange(2) + gg.randn(2)).dtype == gg.float32
    assert gg.cat([gg.randn(2), gg.randn(2, dtype=gg.float64)]).dtype == gg.float64


@pytest.mark.parametrize("make", [
    lambda: gg.tensor([1, 2, 3], requires_grad=True),
    lambda: gg.zeros(3, dtype=gg.int64, requires_grad=True),
    lambda: gg.ones(3, dtype=gg.bool, requires_grad=True),
    lambda: gg.arange(3, requires_grad=True),
    lambda: gg.arange(3).requires_grad_(),
    lambda: gg.randn(3).long().requires_grad_(),
    lambda: gg.full((2,), 7, requires_grad=True),
    lambda: gg.from_numpy(np.arange(3, dtype=np.int32)).requires_grad_(),
    lambda: nn.Parameter(gg.arange(3)),
])
def test_integer_and_bool_tensors_cannot_require_grad(make):
    with pytest.raises(RuntimeError, match=r"requires_grad.*floating-point.*(int|bool)"):
        make()


def test_optimizers_refuse_integer_parameters():
    from gpugrad import optim

    with pytest.raises(TypeError, match=r"optimi[sz]e.*floating-point.*int64"):
        optim.SGD([gg.arange(3)], lr=0.1)


def test_integer_outputs_of_a_graph_do_not_require_grad():
    x = gg.randn(3, requires_grad=True)
    assert not x.argmax().requires_grad
    assert not x.to(gg.int64).requires_grad
    assert not (x > 0).requires_grad


def test_creation_rejects_unsupported_dtypes():
    # The README: no complex numbers. A complex tensor would fail later, far from its cause.
    with pytest.raises(TypeError, match=r"tensor.*complex"):
        gg.tensor([1, 2], dtype="complex64")
    with pytest.raises(TypeError, match=r"tensor.*complex"):
        gg.tensor([1 + 2j])
    with pytest.raises(TypeError, match=r"from_numpy.*complex"):
        gg.from_numpy(np.zeros(2, np.complex64))


@pytest.mark.parametrize("make", [gg.rand, gg.randn])
def test_random_float16_tensors_work_as_in_pytorch(make):
    # NumPy's Generator has no float16 path; PyTorch's randn(dtype=float16) works.
    x = make(3, 4, dtype=gg.float16)
    assert x.dtype == gg.float16 and x.shape == (3, 4)
    assert np.isfinite(x.numpy()).all()


# ----------------------------------------------------------------------------- ragged data

@pytest.mark.parametrize("data", [
    [[1, 2], [3]],
    [[1, 2], 3],
    [[[1, 2], [3, 4]], [[1, 2], [3]]],
    [np.zeros(2), np.zeros(3)],
    [[1.0, 2.0], []],
])
def test_ragged_nested_lists_raise_value_error(data):
    with pytest.raises(ValueError, match=r"tensor:.*ragged"):
        gg.tensor(data)


@pytest.mark.parametrize("data, pattern", [
    ([None, 1], r"tensor:.*dtype"),
    (["a", "b"], r"tensor:.*<U1|tensor:.*str"),
    ({"a": 1}, r"tensor:.*dict"),
    ([[1, 2], [3, "x"]], r"tensor:"),
])
def test_non_numeric_data_raises_type_error(data, pattern):
    with pytest.raises(TypeError, match=pattern):
        gg.tensor(data)


def test_rectangular_and_empty_nested_lists_are_fine():
    assert gg.tensor([[1, 2], [3, 4]]).shape == (2, 2)
    assert gg.tensor([]).shape == (0,)
    assert gg.tensor([[], []]).shape == (2, 0)


# ----------------------------------------------------------------------------- creation sizes

BAD_SIZES = [
    ("zeros", lambda: gg.zeros(-1)),
    ("ones", lambda: gg.ones(2, -3)),
    ("empty", lambda: gg.empty((2, -1))),
    ("randn", lambda: gg.randn(2, -3)),
    ("rand", lambda: gg.rand(-2)),
    ("full", lambda: gg.full((-1,), 2.0)),
    ("eye", lambda: gg.eye(-2)),
    ("linspace", lambda: gg.linspace(0, 1, -3)),
    ("randperm", lambda: gg.randperm(-1)),
    ("arange", lambda: gg.arange(0, 10, -1)),
]


@pytest.mark.parametrize("op, call", BAD_SIZES, ids=[op for op, _ in BAD_SIZES])
def test_creation_functions_name_themselves_and_the_bad_size(op, call):
    # PyTorch: "Trying to create tensor with negative dimension -1: [-1]", "n must be greater
    # or equal to 0, got -2", "upper bound and lower bound inconsistent with step sign".
    with pytest.raises((ValueError, RuntimeError), match=rf"{op}\b.*-\d|{op}\b.*step"):
        call()


# ----------------------------------------------------------------------------- devices

def _expect_device_errors(cases):
    """Each call raises a RuntimeError naming its op (a regex) and both devices."""
    for op, call in cases.items():
        with pytest.raises(RuntimeError) as info:
            call()
        msg = str(info.value)
        assert re.search(op, msg) and re.search(DEVICE_PAIR, msg), f"{op}: {msg}"


def test_binary_and_nn_ops_refuse_mixed_devices(on_fake_cuda):
    a = gg.randn(2, 3)
    c = on_fake_cuda(gg.randn(2, 3))
    cases = {
        "add": lambda: a + c,
        "mul": lambda: c * a,
        "maximum": lambda: gg.maximum(a, c),
        "eq": lambda: a == c,
        "where": lambda: gg.where(on_fake_cuda(a > 0), a, 0.0),
        "matmul": lambda: a @ on_fake_cuda(gg.randn(3, 2)),
        "cat": lambda: gg.cat([a, a, c]),
        "stack|cat": lambda: gg.stack([a, c]),
        "gather": lambda: a.gather(1, on_fake_cuda(gg.tensor([[0], [1]]))),
        "index": lambda: a[on_fake_cuda(gg.tensor([0, 1]))],
        "setitem": lambda: a.__setitem__(0, on_fake_cuda(gg.randn(3))),
        "in-place|add_": lambda: a.add_(c),
    }
    _expect_device_errors(cases)


def test_layers_and_losses_refuse_mixed_devices(on_fake_cuda):
    x, t = gg.randn(4, 3), gg.tensor([0, 1, 2, 0])
    cases = {
        "conv2d": lambda: F.conv2d(gg.randn(1, 1, 4, 4), on_fake_cuda(gg.randn(2, 1, 3, 3))),
        "conv2d.*bias": lambda: F.conv2d(gg.randn(1, 1, 4, 4), gg.randn(2, 1, 3, 3),
                                         on_fake_cuda(gg.zeros(2))),
        "Conv2d|conv2d": lambda: nn.Conv2d(1, 2, 3)(on_fake_cuda(gg.randn(1, 1, 4, 4))),
        "Linear|linear|matmul": lambda: nn.Linear(3, 2)(on_fake_cuda(gg.randn(4, 3))),
        "cross_entropy.*target": lambda: F.cross_entropy(x, on_fake_cuda(gg.tensor([0, 1, 2, 0]))),
        "cross_entropy.*weight": lambda: F.cross_entropy(x, t, weight=on_fake_cuda(gg.ones(3))),
        "nll_loss": lambda: F.nll_loss(x, on_fake_cuda(gg.tensor([0, 1, 2, 0]))),
        "batch_norm": lambda: F.batch_norm(x, on_fake_cuda(gg.zeros(3)), on_fake_cuda(gg.ones(3)),
                                           training=True),
        "backward": lambda: (gg.randn(3, requires_grad=True) * 2).backward(
            on_fake_cuda(gg.ones(3))),
    }
    _expect_device_errors(cases)


def test_bce_with_logits_refuses_mixed_devices(on_fake_cuda):
    # Must be a device error naming the loss (or the op inside it), never a crash from
    # building a constant on a device the input is not on.
    with pytest.raises(RuntimeError, match=DEVICE_PAIR):
        F.binary_cross_entropy_with_logits(gg.randn(4), on_fake_cuda(gg.ones(4)))
    with pytest.raises(RuntimeError, match=DEVICE_PAIR):
        F.binary_cross_entropy_with_logits(gg.randn(4), gg.ones(4),
                                           pos_weight=on_fake_cuda(gg.ones(4)))


def test_cuda_request_without_cuda_says_why():
    if gg.cuda.is_available():
        pytest.skip("CUDA is usable here")
    with pytest.raises(RuntimeError, match=r"cuda.*unavailable"):
        gg.randn(2).to("cuda")
    with pytest.raises(ValueError, match=r"device.*'tpu'"):
        gg.randn(2).to("tpu")
