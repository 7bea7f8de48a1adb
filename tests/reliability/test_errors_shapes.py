"""Bad shapes at the public entries raise at once, naming the op, the expected and the given.

A message of NumPy's own ("operands could not be broadcast together ...") does not count: it
names no gpugrad op, so a user cannot tell which line of a model went wrong.
"""

import re

import numpy as np
import pytest

import gpugrad as gg

SHAPE_ERRORS = (ValueError, RuntimeError, IndexError)


def _shape_text(shape) -> str:
    """A regex matching `shape` as gpugrad prints it: (2, 3) or [2, 3]."""
    inner = r",\s*".join(str(s) for s in shape)
    return rf"[\(\[]{inner},?[\)\]]"


# ----------------------------------------------------------------------------- broadcasting

BINARY_OPS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a.abs() ** b,
    "maximum": gg.maximum,
    "minimum": gg.minimum,
    "lt": lambda a, b: a < b,
    "eq": lambda a, b: a == b,
}


@pytest.mark.parametrize("op", sorted(BINARY_OPS))
def test_binary_ops_name_the_op_and_both_shapes(op):
    for shapes in [((2, 3), (4, 5)), ((2, 3), (3, 2)), ((2, 3), (4,)), ((5, 1, 3), (2, 4))]:
        a, b = gg.randn(*shapes[0]), gg.randn(*shapes[1])
        with pytest.raises(SHAPE_ERRORS) as info:
            BINARY_OPS[op](a, b)
        msg = str(info.value)
        assert re.search(rf"\b{op}\b", msg), f"message does not name the op {op!r}: {msg}"
        assert re.search(_shape_text(shapes[0]), msg), msg
        assert re.search(_shape_text(shapes[1]), msg), msg


def test_broadcast_error_from_a_layer_names_the_op():
    # mse_loss with mismatched shapes: PyTorch warns, then fails in the broadcast.
    with pytest.warns(UserWarning), pytest.raises(SHAPE_ERRORS, match=r"sub.*\(4, 3\).*\(5, 3\)"):
        gg.nn.functional.mse_loss(gg.randn(4, 3), gg.randn(5, 3))


def test_where_and_broadcast_to_name_the_op():
    with pytest.raises(SHAPE_ERRORS, match=r"where.*\(4,\)"):
        gg.where(gg.randn(2, 3) > 0, gg.randn(2, 3), gg.randn(4))
    with pytest.raises(SHAPE_ERRORS, match=r"broadcast_to.*\(2, 3\).*\(3, 3\)"):
        gg.randn(2, 3).broadcast_to((3, 3))
    with pytest.raises(SHAPE_ERRORS, match=r"(expand|broadcast_to).*\(2, 3\)"):
        gg.randn(2, 3).expand(4, 3)


def test_valid_broadcasting_still_works():
    y = gg.ones(5, 1, 3) + gg.ones(4, 1)
    assert y.shape == (5, 4, 3)
    np.testing.assert_array_equal(y.numpy(), np.full((5, 4, 3), 2.0, np.float32))


# ----------------------------------------------------------------------------- matmul

@pytest.mark.parametrize("op, a_shape, b_shape", [
    ("matmul", (2, 3), (4, 5)),
    ("matmul", (3,), (4,)),
    ("matmul", (2, 3), (4,)),
    ("matmul", (5,), (4, 2)),
    ("matmul", (2, 2, 3), (2, 4, 5)),
    ("matmul", (2, 3, 4), (3, 4, 5)),  # batch dims 2 and 3 do not broadcast
    ("mm", (2, 3), (4, 5)),
    ("mm", (3,), (3,)),
    ("bmm", (2, 3, 4), (2, 5, 6)),
    ("bmm", (2, 3, 4), (3, 4, 6)),
    ("bmm", (3, 4), (4, 6)),
])
def test_matmul_family_names_op_and_shapes(op, a_shape, b_shape):
    a, b = gg.randn(*a_shape), gg.randn(*b_shape)
    with pytest.raises(SHAPE_ERRORS) as info:
        getattr(gg, op)(a, b)
    msg = str(info.value)
    assert "matmul" in msg or op in msg, msg
    assert re.search(_shape_text(a_shape), msg) or re.search(_shape_text(a_shape[:-2]), msg), msg


def test_matmul_operator_and_scalar_operands():
    with pytest.raises(SHAPE_ERRORS, match=r"matmul.*\(2, 3\).*\(4, 5\)"):
        gg.randn(2, 3) @ gg.randn(4, 5)
    with pytest.raises(SHAPE_ERRORS, match=r"matmul.*at least 1 dimension"):
        gg.matmul(gg.tensor(1.0), gg.randn(3))


# ----------------------------------------------------------------------------- reshape & co

@pytest.mark.parametrize("shape", [(4, 2), (7,), (-1, 4), (0, -1), (2, -1, -1)])
def test_reshape_to_a_wrong_size(shape):
    with pytest.raises(RuntimeError, match=r"(reshape|view).*invalid|only one dimension"):
        gg.randn(2, 3).reshape(*shape)


@pytest.mark.parametrize("shape", [(-2, 3), (-3, -2), (3, -2)])
def test_reshape_rejects_negative_sizes_other_than_minus_one(shape):
    # PyTorch: "invalid shape dimension -2"; NumPy's "can only specify one unknown dimension"
    # names no op and is wrong for (3, -2).
    with pytest.raises(RuntimeError, match=r"reshape.*-[23]"):
        gg.randn(2, 3).reshape(*shape)


def test_cat_stack_split_name_the_op_and_shapes():
    a = gg.randn(2, 3)
    with pytest.raises(SHAPE_ERRORS, match=r"cat.*\(2, 3\).*\(2, 4\)"):
        gg.cat([a, gg.randn(2, 4)], 0)
    with pytest.raises(SHAPE_ERRORS, match=r"stack.*\(2, 3\).*\(2, 4\)"):
        gg.stack([a, gg.randn(2, 4)])
    with pytest.raises(SHAPE_ERRORS, match=r"split.*\[1, 1\].*3"):
        a.split([1, 1], dim=1)
    with pytest.raises(ValueError, match="cat: expected a non-empty"):
        gg.cat([])


@pytest.mark.parametrize("call, op", [
    (lambda x: x.sum(dim=3), "sum"),
    (lambda x: x.softmax(dim=2), "softmax"),
    (lambda x: x.transpose(0, 5), "transpose"),
    (lambda x: x.max(dim=-3), "max"),
    (lambda x: x.gather(3, gg.tensor([[0], [1]])), "gather"),
])
def test_dimension_out_of_range_is_an_index_error_naming_the_op(call, op):
    with pytest.raises(IndexError, match=rf"{op}: dimension out of range.*\[-2, 1\]"):
        call(gg.randn(2, 3))


def test_unsqueeze_range_counts_the_new_dim():
    with pytest.raises(IndexError, match=r"unsqueeze: dimension out of range.*\[-3, 2\].*4"):
        gg.randn(2, 3).unsqueeze(4)


def test_gather_with_out_of_range_index_names_the_op():
    x = gg.randn(2, 3)
    with pytest.raises(IndexError, match=r"gather.*5.*3"):
        x.gather(1, gg.tensor([[5], [0]]))
    with pytest.raises(IndexError, match=r"gather.*-5.*3"):
        x.gather(1, gg.tensor([[-5], [0]]))


def test_gather_rejects_negative_indices_instead_of_wrapping():
    # PyTorch's gather has no negative indices; NumPy's take_along_axis wraps -1 to the last
    # column, which would be a silent wrong answer.
    x = gg.arange(6, dtype=gg.float32).reshape(2, 3)
    with pytest.raises(IndexError, match=r"gather.*-1.*3"):
        x.gather(1, gg.tensor([[-1], [0]]))


def test_getitem_out_of_bounds_and_bad_masks():
    x = gg.randn(2, 3)
    with pytest.raises(IndexError, match=r"index.*5.*size 2"):
        x[5]
    with pytest.raises(IndexError, match=r"index.*7.*size 2"):
        x[gg.tensor([0, 7])]
    with pytest.raises(IndexError, match=r"index.*mask \(3,\).*\(2, 3\)"):
        x[gg.tensor([True, False, True])]
    with pytest.raises(IndexError, match="index.*long or bool.*float32"):
        x[gg.tensor([0.5])]


def test_setitem_with_a_value_of_the_wrong_shape_names_the_op():
    x = gg.randn(2, 3)
    before = x.numpy().copy()
    with pytest.raises(SHAPE_ERRORS, match=r"setitem.*\(4,\).*\(3,\)"):
        x[0] = gg.randn(4)
    np.testing.assert_array_equal(x.numpy(), before)
