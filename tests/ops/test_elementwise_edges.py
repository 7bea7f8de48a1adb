"""Integer and bool semantics of the element-wise ops, dtype promotion, and the operand checks
shared by every op: each as PyTorch does it (compared where PyTorch is installed)."""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn.functional as F


def _torch():
    return pytest.importorskip("torch")


def _same(y, ty):
    """Same values and the same dtype as the PyTorch result."""
    assert str(y.dtype) == str(ty.dtype).replace("torch.", ""), (y.dtype, ty.dtype)
    np.testing.assert_array_equal(y.numpy(), ty.numpy())


INTS = [[6, 5, -7, 0, 12], [3, 1, 2, -4, 5]]
BOOLS = [[True, False, True, False], [True, True, False, False]]


@pytest.mark.parametrize("op", ["__and__", "__or__", "__xor__"])
@pytest.mark.parametrize("values,dtype", [(INTS, "int64"), (INTS, "int32"), (BOOLS, "bool")])
def test_bitwise_binary_matches_torch(op, values, dtype):
    torch = _torch()
    a, b = (gg.tensor(np.array(v, dtype=dtype)) for v in values)
    ta, tb = (torch.tensor(np.array(v, dtype=dtype)) for v in values)
    _same(getattr(a, op)(b), getattr(ta, op)(tb))
    _same(getattr(a, op)(1), getattr(ta, op)(1))  # a Python int on the right
    _same(getattr(a, "__r" + op[2:])(3), getattr(ta, "__r" + op[2:])(3))  # and on the left


@pytest.mark.parametrize("values,dtype", [(INTS[0], "int64"), ([6, 5, 0, 255], "uint8"),
                                          (BOOLS[0], "bool")])
def test_invert_matches_torch(values, dtype):
    torch = _torch()
    _same(~gg.tensor(np.array(values, dtype=dtype)), ~torch.tensor(np.array(values, dtype=dtype)))


def test_bitwise_ops_on_integers_work_bit_by_bit():
    # Without PyTorch too: & of 6 and 3 is 2, not a truth value.
    assert (gg.tensor([6, 5]) & gg.tensor([3, 1])).tolist() == [2, 1]
    assert (~gg.tensor([6, 5])).tolist() == [-7, -6]
    assert (gg.tensor([6]) ^ 3).tolist() == [5]
    assert gg.bitwise_or(gg.tensor([4]), 1).tolist() == [5]


@pytest.mark.parametrize("fn", [lambda a: ~a, lambda a: a & a, lambda a: a | 1, lambda a: a ^ a])
def test_bitwise_ops_refuse_floats(fn):
    with pytest.raises(TypeError, match=r"bitwise_\w+: expected integer or bool tensors, got "
                                        r"float32"):
        fn(gg.tensor([1.5, 0.0]))


def test_logical_xor():
    a, b = gg.tensor([True, True, False]), gg.tensor([True, False, False])
    assert gg.logical_xor(a, b).tolist() == [False, True, False]
    assert a.logical_xor(b).tolist() == [False, True, False]


@pytest.mark.parametrize("a,b", [([7, -7, 0, 5], [2, 2, 3, -3]), ([7.5, -7.0, 0.5], [2.0, 2.0, -0.25])])
def test_floor_divide_and_remainder_match_torch(a, b):
    torch = _torch()
    x, y, tx, ty = gg.tensor(a), gg.tensor(b), torch.tensor(a), torch.tensor(b)
    _same(x // y, tx // ty)
    _same(x % y, tx % ty)
    _same(x // 2, tx // 2)
    _same(x % 3, tx % 3)
    _same(5 // y, 5 // ty)
    _same(5 % y, 5 % ty)
    _same(gg.floor_divide(x, y), torch.floor_divide(tx, ty))
    _same(gg.remainder(x, y), torch.remainder(tx, ty))


def test_remainder_gradient_matches_torch():
    torch = _torch()
    a, b = [5.5, -3.0, 0.7], [2.0, 2.0, -0.3]
    x, y = gg.tensor(a, requires_grad=True), gg.tensor(b, requires_grad=True)
    tx, ty = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    (x % y).sum().backward()
    (tx % ty).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())
    np.testing.assert_allclose(y.grad.numpy(), ty.grad.numpy())


def test_floor_divide_has_no_gradient():
    x = gg.tensor([5.5, -3.0], requires_grad=True)
    assert not (x // 2).requires_grad


@pytest.mark.parametrize("fn", [lambda a: a // 0, lambda a: a % gg.tensor([1, 0]),
                                lambda a: gg.div(a, 0, rounding_mode="trunc")])
def test_integer_division_by_zero_raises(fn):
    with pytest.raises(ZeroDivisionError, match="integer division by zero"):
        fn(gg.tensor([7, 3]))


def test_float_division_by_zero_gives_inf_and_nan_as_torch():
    torch = _torch()
    with np.errstate(divide="ignore", invalid="ignore"):
        _same(gg.tensor([7.0, -1.0]) // 0, torch.tensor([7.0, -1.0]) // 0)
        _same(gg.tensor([7.0]) % 0, torch.tensor([7.0]) % 0)


@pytest.mark.parametrize("mode", ["floor", "trunc"])
@pytest.mark.parametrize("a,b", [([7, -7, 6, -6], 2), ([7, -7, 1], [-2, -2, 3]),
                                 ([7.5, -7.5, 2.0], 2.0)])
def test_div_rounding_modes_match_torch(mode, a, b):
    torch = _torch()
    y = gg.div(gg.tensor(a), gg.tensor(b) if isinstance(b, list) else b, rounding_mode=mode)
    ty = torch.div(torch.tensor(a), torch.tensor(b) if isinstance(b, list) else b,
                   rounding_mode=mode)
    _same(y, ty)


def test_div_refuses_an_unknown_rounding_mode():
    with pytest.raises(ValueError, match="div: expected rounding_mode None, 'floor' or 'trunc'"):
        gg.div(gg.tensor([1.0]), 2, rounding_mode="round")


def test_integer_true_division_divides_before_any_wraparound():
    torch = _torch()
    a = np.array([200, 2], np.uint8)
    _same(gg.tensor(a) / 300, torch.tensor(a) / 300)
    _same(gg.tensor([3, 4]) / gg.tensor([2, 8]), torch.tensor([3, 4]) / torch.tensor([2, 8]))


def test_out_of_range_python_ints_wrap_as_in_torch():
    torch = _torch()
    a = np.array([200, 2], np.uint8)
    _same(gg.tensor(a) + (-1), torch.tensor(a) + (-1))
    _same(gg.tensor(a) + 300, torch.tensor(a) + 300)
    _same(gg.tensor(a) * 300, torch.tensor(a) * 300)


def test_integer_powers_match_torch():
    torch = _torch()
    _same(2 ** gg.tensor([3, -2, 0]), 2 ** torch.tensor([3, -2, 0]))
    base, exp = [1, -1, -1, 2, 0, 3], [-3, -3, -2, -1, 2, 2]
    _same(gg.tensor(base) ** gg.tensor(exp), torch.tensor(base) ** torch.tensor(exp))
    with pytest.raises(ValueError, match="pow: integers to negative integer powers"):
        gg.tensor([3]) ** -1


def test_negating_a_bool_tensor_raises():
    with pytest.raises(TypeError, match="neg: negation, the `-` operator, on a bool tensor"):
        -gg.tensor([True, False])


def test_clamping_integers_to_a_float_gives_the_default_float():
    torch = _torch()
    _same(gg.tensor([1, 2]).clamp(min=0.5), torch.tensor([1, 2]).clamp(min=0.5))
    _same(gg.tensor([1, 2]).clamp(max=1), torch.tensor([1, 2]).clamp(max=1))


@pytest.mark.parametrize("a,b", [
    (("float32", (3,)), ("float64", ())),  # a 0-d tensor of the same category: no promotion
    (("int32", (3,)), ("int64", ())),
    (("uint8", (3,)), ("int8", ())),
    (("int32", (3,)), ("float64", ())),  # a higher category: the 0-d tensor's dtype
    (("bool", (3,)), ("int64", ())),
    (("float32", ()), ("float64", ())),  # both 0-d: ordinary promotion
    (("float32", (3,)), ("float64", (1,))),  # a 1-element tensor has a dimension
])
def test_zero_dim_tensors_promote_as_in_torch(a, b):
    torch = _torch()
    (da, sa), (db, sb) = a, b
    xa, xb = np.ones(sa, da), np.ones(sb, db)
    for op in ("__add__", "__mul__", "__radd__"):
        y = getattr(gg.tensor(xa), op)(gg.tensor(xb))
        ty = getattr(torch.tensor(xa), op)(torch.tensor(xb))
        _same(y, ty)


def test_reductions_over_no_dims_reduce_everything():
    x = gg.tensor(np.arange(6.0).reshape(2, 3))
    assert x.sum(dim=()).item() == 15.0
    assert x.mean(dim=[]).item() == 2.5
    assert x.amax(dim=()).item() == 5.0


@pytest.mark.parametrize("reduce", ["sum", "mean", "amax", "amin", "var", "std"])
def test_a_dim_given_twice_raises(reduce):
    with pytest.raises(RuntimeError, match=f"{reduce}: dim 0 appears multiple times"):
        getattr(gg.ones(2, 3), reduce)(dim=(0, -2))


@pytest.mark.parametrize("call", [
    lambda x: x.sum(dim=1.0), lambda x: x.mean(dim="0"), lambda x: x.softmax(dim=1.0),
    lambda x: x.argmax(dim=(0, 1)), lambda x: x.max(dim=(0,)), lambda x: x.transpose(0, 1.0),
])
def test_a_dim_that_is_not_an_int_raises_a_type_error(call):
    with pytest.raises(TypeError, match=r"\w+: dim must be an int"):
        call(gg.ones(2, 3))


def test_assigning_a_gradient_of_the_wrong_shape_dtype_or_type_raises():
    p = gg.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"grad: expected a gradient of shape \(3,\) and dtype "
                                           r"float32, got shape \(1,\) and dtype float32"):
        p.grad = gg.tensor([0.5])
    with pytest.raises(RuntimeError, match="got shape \\(3,\\) and dtype float64"):
        p.grad = gg.ones(3, dtype=gg.float64)
    with pytest.raises(TypeError, match="grad: expected a Tensor or None, got ndarray"):
        p.grad = np.ones(3, np.float32)
    p.grad = gg.full((3,), 2.0)  # the right one goes through, and so does None
    assert p.grad.tolist() == [2.0, 2.0, 2.0]
    p.grad = None
    assert p.grad is None


@pytest.mark.parametrize("call,message", [
    (lambda: F.relu([1.0]), "relu: expected Tensor inputs, got list"),
    (lambda: gg.exp(np.ones(2)), "exp: expected a Tensor, got ndarray"),
    (lambda: F.softmax([1.0, 2.0], dim=0), "softmax: expected a Tensor, got list"),
    (lambda: F.relu(np.ones(3)), "relu: expected Tensor inputs, got ndarray"),  # has .device
    (lambda: gg.abs(np.ones(3)), "abs: expected Tensor inputs, got ndarray"),
    (lambda: gg.ones(2) * [1.0, 2.0], "mul: unsupported operand type list"),
    (lambda: gg.maximum(gg.ones(2), "a"), "maximum: unsupported operand type str"),
])
def test_an_op_given_a_list_or_array_names_itself(call, message):
    with pytest.raises(TypeError, match=message):
        call()


@pytest.mark.parametrize("op", [gg.cat, gg.stack])
def test_cat_and_stack_refuse_arrays(op):
    with pytest.raises(TypeError, match=f"{op.__name__}: expected a sequence of Tensors, "
                                        "element 1 is a ndarray"):
        op([gg.ones(2), np.ones(2)])


@pytest.mark.parametrize("src,shape,dtype", [("float32", (4,), "int32"), ("float32", (2, 2), "float64"),
                                             ("float32", (4,), "float16"), ("float64", (3,), "uint8")])
def test_view_as_a_dtype_reinterprets_bits_as_torch(src, shape, dtype):
    torch = _torch()
    a = np.arange(np.prod(shape), dtype=src).reshape(shape) + 0.5
    _same(gg.tensor(a).view(getattr(gg, dtype)), torch.tensor(a).view(getattr(torch, dtype)))


def test_view_as_a_dtype_that_does_not_fit_raises():
    with pytest.raises(RuntimeError, match="view: cannot view a float32 tensor of shape \\(3,\\) "
                                           "as float64"):
        gg.ones(3).view(gg.float64)


def test_shapes_must_be_ints():
    with pytest.raises(TypeError, match=r"reshape: expected a shape of ints, got \(2.0, 2\)"):
        gg.ones(4).reshape(2.0, 2)


def test_float_class_targets_say_what_cross_entropy_expects():
    with pytest.raises(ValueError, match="cross_entropy: expected class indices of an integer "
                                         "dtype, or probability targets of the input's shape"):
        F.cross_entropy(gg.randn(4, 5), gg.tensor([0.0, 1.0, 2.0, 3.0]))


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int32", "bool"])
def test_integer_and_bool_sums_are_int64(dtype):
    torch = _torch()
    a = np.array([120, 100, 1], dtype=dtype)  # 221: past int8, as a sum in int64
    _same(gg.tensor(a).sum(), torch.tensor(a).sum())


def test_a_numpy_array_operand_is_a_tensor_as_in_torch():
    torch = _torch()
    a = np.array([1, 3])
    _same(gg.tensor([1, 2]) == a, torch.tensor([1, 2]) == torch.as_tensor(a))
    _same(np.ones(2) + gg.ones(2), torch.as_tensor(np.ones(2)) + torch.ones(2))
    assert (gg.tensor([1.0]) == None) is False  # noqa: E711 (what `t in [None]` does)


def test_no_dims_means_every_dim_for_any_all_and_logsumexp_too():
    # README, "Differences from PyTorch": PyTorch's any/all leave the input as it is here.
    x = gg.tensor([[True, False], [False, False]])
    assert x.any(dim=()).item() is True and x.all(dim=()).item() is False
    y = gg.tensor([[0.0, 1.0], [2.0, 3.0]])
    np.testing.assert_allclose(y.logsumexp(dim=()).item(), np.log(np.exp([0, 1, 2, 3]).sum()),
                               rtol=1e-6)
