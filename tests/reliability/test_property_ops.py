"""Property tests (hypothesis).

- Random compositions of 2-4 ops on random broadcastable shapes pass gradcheck in float64.
- Random bad shapes raise the documented exception types (ValueError / RuntimeError /
  IndexError) naming the op -- never another exception, never a silent result.
- Random conv / pool geometry: gpugrad refuses exactly what PyTorch refuses and otherwise
  returns PyTorch's output shape and values.
"""

import math

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import gpugrad as gg
from gpugrad.autograd import gradcheck
from gpugrad.nn import functional as F

SHAPE_ERRORS = (ValueError, RuntimeError, IndexError)
FAST = settings(max_examples=40, deadline=None)


# ----------------------------------------------------------------------------- compositions
# Every op here is smooth on the values it can meet (no kinks, no poles), so central
# differences are a fair reference.

BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b * b + 1.0),
    "pow": lambda a, b: (a * a + 1.0) ** (b * 0.5),
    "where": lambda a, b: gg.where(a > 0.3, a * b, b - a),  # kink-free away from a == 0.3
}

UNARY = {
    "exp": lambda t: (t * 0.5).exp(),
    "tanh": lambda t: t.tanh(),
    "sigmoid": lambda t: t.sigmoid(),
    "sin": lambda t: t.sin(),
    "square": lambda t: t * t,
    "log1p": lambda t: (t * t).log1p(),
    "sqrt": lambda t: (t * t + 1.0).sqrt(),
    "reciprocal": lambda t: 1.0 / (t * t + 1.0),
    "neg": lambda t: -t,
}

# (name, needs at least one dim, function of (tensor, dim))
REDUCTIONS_AND_SHAPES = {
    "sum": lambda t, d: t.sum(dim=d),
    "mean_keepdim": lambda t, d: t.mean(dim=d, keepdim=True),
    "softmax": lambda t, d: t.softmax(dim=d),
    "log_softmax": lambda t, d: t.log_softmax(dim=d),
    "logsumexp": lambda t, d: t.logsumexp(dim=d),
    "transpose": lambda t, d: t.transpose(d, -1),
    "flatten": lambda t, d: t.reshape(-1),
    "unsqueeze_expand": lambda t, d: t.unsqueeze(0).expand(2, *t.shape),
    "slice": lambda t, d: t[..., :1] if t.shape[-1] > 1 else t,
    "cat": lambda t, d: gg.cat([t, t * 2.0], dim=d),
    "matmul_self": lambda t, d: t @ t.transpose(-1, -2) if t.ndim >= 2 else t @ t,
}

ALL_OPS = sorted(UNARY) + sorted(REDUCTIONS_AND_SHAPES)


def _apply(name, t, dim_seed):
    if name in UNARY:
        return UNARY[name](t)
    if t.ndim == 0:  # nothing to reduce or reshape: a smooth unary op instead
        return UNARY["tanh"](t)
    d = dim_seed % t.ndim - t.ndim  # a valid (negative) dim, fixed by the drawn seed
    return REDUCTIONS_AND_SHAPES[name](t, d)


@FAST
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
       binary=st.sampled_from(sorted(BINARY)),
       chain=st.lists(st.tuples(st.sampled_from(ALL_OPS), st.integers(0, 5)),
                      min_size=1, max_size=3),
       seed=st.integers(0, 2**16))
def test_random_compositions_pass_gradcheck(shapes, binary, chain, seed):
    rng = np.random.default_rng(seed)
    a_shape, b_shape = shapes.input_shapes
    a = gg.tensor(rng.uniform(-1.5, 1.5, a_shape), dtype=gg.float64, requires_grad=True)
    b = gg.tensor(rng.uniform(-1.5, 1.5, b_shape), dtype=gg.float64, requires_grad=True)
    # Keep `where`'s switch away from its threshold, where the function jumps.
    assume(not np.any(np.abs(a.numpy() - 0.3) < 1e-3))

    def f(a, b):
        z = BINARY[binary](a, b)
        for name, dim_seed in chain:
            z = _apply(name, z, dim_seed)
        return z

    out = f(a, b)
    assert out.dtype == gg.float64 and np.isfinite(out.numpy()).all()
    # Central differences see <w, f(x +- eps)>: its rounding, about sum|f| * 2^-52 / eps, must
    # stay below atol, or a chain like exp(exp(x @ x^T)) (outputs of 1e22 beside outputs of
    # 1) makes the numerical gradient 0 where autograd's is right (found by CI, seed 2098).
    assume(np.abs(out.numpy()).sum() < 1e4)
    assert gradcheck(f, (a, b), eps=1e-6, atol=1e-6, rtol=1e-4)


# ----------------------------------------------------------------------------- bad shapes

@st.composite
def non_broadcastable_pairs(draw):
    """Two shapes that clash in one aligned dim (both sides > 1 and different)."""
    a = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    clash = draw(st.integers(0, len(a) - 1))
    a[clash] = max(a[clash], 2)
    b = list(a)
    b[clash] = draw(st.integers(2, 5).filter(lambda s: s != a[clash]))
    drop = draw(st.integers(0, clash))  # b may lack some leading dims
    return tuple(a), tuple(b[drop:])


@FAST
@given(pair=non_broadcastable_pairs(), op=st.sampled_from(["add", "sub", "mul", "div",
                                                           "maximum", "where"]),
       swap=st.booleans())
@example(pair=((2, 3), (4,)), op="mul", swap=False)
def test_non_broadcastable_shapes_raise_naming_the_op(pair, op, swap):
    a_shape, b_shape = pair[::-1] if swap else pair
    a, b = gg.randn(*a_shape), gg.randn(*b_shape)
    calls = {"add": gg.add, "sub": gg.sub, "mul": gg.mul, "div": gg.div,
             "maximum": gg.maximum, "where": lambda a, b: gg.where(a > 0, a, b)}
    with pytest.raises(SHAPE_ERRORS) as info:
        calls[op](a, b)
    assert op in str(info.value), f"{op} not named in: {info.value}"


@FAST
@given(m=st.integers(1, 4), k=st.integers(1, 4), k2=st.integers(1, 4), n=st.integers(1, 4),
       batch=st.lists(st.integers(1, 3), max_size=2), vector=st.sampled_from([None, "a", "b"]))
def test_matmul_inner_dim_mismatch_raises(m, k, k2, n, batch, vector):
    assume(k != k2)
    a_shape = (k,) if vector == "a" else (*batch, m, k)
    b_shape = (k2,) if vector == "b" else (*batch, k2, n)
    with pytest.raises(SHAPE_ERRORS, match=rf"matmul.*{k}.*{k2}|matmul.*{k2}.*{k}"):
        gg.randn(*a_shape) @ gg.randn(*b_shape)


def _torch_reshape_ok(shape, target):
    """PyTorch's rule: sizes >= 0 except one -1, and the element counts agree."""
    if any(s < -1 for s in target) or target.count(-1) > 1:
        return None
    numel = math.prod(shape)
    known = math.prod(s for s in target if s != -1)
    if -1 in target:
        if known == 0 or numel % known:
            return None
        return tuple(numel // known if s == -1 else s for s in target)
    return tuple(target) if known == numel else None


@FAST
@given(shape=st.lists(st.integers(0, 4), min_size=0, max_size=3),
       target=st.lists(st.integers(-3, 6), min_size=0, max_size=3))
@example(shape=[2, 3], target=[-3, -2])  # the product matches, but no size may be -2 or -3
@example(shape=[2, 3], target=[3, -1])
def test_reshape_accepts_exactly_what_pytorch_accepts(shape, target):
    x = gg.randn(*shape)
    expected = _torch_reshape_ok(shape, target)
    if expected is None:
        with pytest.raises(RuntimeError, match="reshape"):
            x.reshape(*target) if target else x.reshape(())
    else:
        y = x.reshape(*target) if target else x.reshape(())
        assert y.shape == expected
        np.testing.assert_array_equal(y.numpy().ravel(), x.numpy().ravel())


@FAST
@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=3), dim=st.integers(-6, 6),
       op=st.sampled_from(["sum", "mean", "softmax", "log_softmax", "amax", "argmax", "cat",
                           "squeeze", "transpose"]))
def test_dims_out_of_range_raise_index_error_naming_the_op(shape, dim, op):
    x = gg.randn(*shape)
    calls = {
        "sum": lambda: x.sum(dim=dim), "mean": lambda: x.mean(dim=dim),
        "softmax": lambda: x.softmax(dim=dim), "log_softmax": lambda: x.log_softmax(dim=dim),
        "amax": lambda: x.amax(dim=dim), "argmax": lambda: x.argmax(dim=dim),
        "cat": lambda: gg.cat([x, x], dim=dim), "squeeze": lambda: x.squeeze(dim),
        "transpose": lambda: x.transpose(dim, 0),
    }
    if -len(shape) <= dim < len(shape):
        calls[op]()  # in range: works
    else:
        with pytest.raises(IndexError, match=rf"{op}.*out of range.*{dim}"):
            calls[op]()


# ----------------------------------------------------------------------------- conv / pool vs torch

def _torch_outcome(torch_call):
    try:
        return torch_call(), None
    except Exception as e:  # noqa: BLE001 - any refusal by PyTorch
        return None, e


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 3), cin=st.integers(1, 3), oc=st.integers(1, 3),
       h=st.integers(1, 6), w=st.integers(1, 6), kh=st.integers(1, 4), kw=st.integers(1, 4),
       stride=st.integers(-1, 3), padding=st.integers(-1, 3), dilation=st.integers(0, 3),
       groups=st.integers(1, 2), seed=st.integers(0, 1000))
def test_conv2d_geometry_agrees_with_pytorch(n, c, cin, oc, h, w, kh, kw, stride, padding,
                                            dilation, groups, seed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    wt = rng.standard_normal((oc * groups, cin, kh, kw))
    ref, refused = _torch_outcome(lambda: torch.nn.functional.conv2d(
        torch.from_numpy(x), torch.from_numpy(wt), stride=stride, padding=padding,
        dilation=dilation, groups=groups))
    call = lambda: F.conv2d(gg.tensor(x), gg.tensor(wt), stride=stride,  # noqa: E731
                            padding=padding, dilation=dilation, groups=groups)
    if refused is not None:
        with pytest.raises((ValueError, RuntimeError, TypeError), match="conv2d"):
            call()
    else:
        y = call()
        assert y.shape == tuple(ref.shape)
        np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=1e-10, atol=1e-10)


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 6), w=st.integers(1, 6), kernel=st.integers(0, 4),
       stride=st.one_of(st.none(), st.integers(-1, 3)), padding=st.integers(-1, 2),
       dilation=st.integers(0, 2), op=st.sampled_from(["max_pool2d", "avg_pool2d"]),
       seed=st.integers(0, 1000))
def test_pool_geometry_agrees_with_pytorch(h, w, kernel, stride, padding, dilation, op, seed):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(seed).standard_normal((1, 2, h, w))
    kwargs = dict(stride=stride, padding=padding)
    if op == "max_pool2d":
        kwargs["dilation"] = dilation
    ref, refused = _torch_outcome(
        lambda: getattr(torch.nn.functional, op)(torch.from_numpy(x), kernel, **kwargs))
    call = lambda: getattr(F, op)(gg.tensor(x), kernel, **kwargs)  # noqa: E731
    if refused is not None:
        with pytest.raises((ValueError, RuntimeError, TypeError), match=op):
            call()
    elif not np.isfinite(ref.numpy()).all():
        # PyTorch returns -inf for a max-pooling window that lies wholly in the padding;
        # refusing such a geometry with a clear error is allowed (and better).
        try:
            y = call()
        except ValueError as e:
            assert op in str(e)
        else:
            np.testing.assert_array_equal(y.numpy(), ref.numpy())
    else:
        y = call()
        assert y.shape == tuple(ref.shape), f"torch gives {tuple(ref.shape)}"
        np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=1e-10, atol=1e-10)
