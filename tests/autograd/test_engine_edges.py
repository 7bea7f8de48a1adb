"""Engine and Tensor edge cases found by review, each checked against PyTorch where it runs:
hooks (once per tensor, on the summed gradient; checked results), retain_grad, detach_,
in-place methods and augmented assignment, gradient arrays a leaf owns, comparisons with
non-numbers, conversions, formatting and repr."""

import numpy as np
import pytest

import gpugrad as gg

torch = pytest.importorskip("torch")


def both(fn):
    """fn(M) with M = gpugrad and M = torch, its results as NumPy arrays (or plain values)."""

    def plain(v):
        if isinstance(v, (list, tuple)):
            return [plain(u) for u in v]
        if isinstance(v, (gg.Tensor, torch.Tensor)):
            return v.detach().numpy() if isinstance(v, torch.Tensor) else v.numpy()
        return v

    return plain(fn(gg)), plain(fn(torch))


def assert_same(got, want):
    if isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want)
        for g, w in zip(got, want):
            assert_same(g, w)
    elif isinstance(want, np.ndarray):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    else:
        assert got == want


# ------------------------------------------------------------------ hooks


def test_leaf_hook_runs_once_on_the_summed_gradient():
    def f(M):
        calls = []
        x = M.tensor([1.0, 2.0], requires_grad=True)
        x.register_hook(lambda g: (calls.append(g.tolist()), g.clamp(-1, 1))[1])
        ((x * 3).sum() + (x * 5).sum()).backward()
        return calls, x.grad

    got, want = both(f)
    assert want[0] == [[8.0, 8.0]]
    assert_same(got, want)


@pytest.mark.parametrize("how", ["grad", "backward_inputs"])
def test_leaf_hooks_run_for_grad_and_backward_inputs(how):
    def f(M):
        calls = []
        x = M.tensor([1.0, 2.0], requires_grad=True)
        x.register_hook(lambda g: (calls.append(g.tolist()), g * 10)[1])
        y = (x * 3).sum() + (x * 5).sum()
        if how == "grad":
            (g,) = M.autograd.grad(y, x)
        else:
            y.backward(inputs=[x])
            g = x.grad
        return calls, g

    got, want = both(f)
    np.testing.assert_allclose(want[1], [80.0, 80.0])
    assert_same(got, want)


@pytest.mark.parametrize("leaf", [True, False])
@pytest.mark.parametrize(
    "bad, error, match",
    [
        (lambda g: g.sum().reshape(1), RuntimeError, "hook 'bad' has changed the size of value"),
        (lambda g: g.reshape(2, 1) * g.reshape(1, 2), RuntimeError, "changed the size"),
        (lambda g: g.double(), RuntimeError, "hook 'bad' has changed the type of value"),
        (lambda g: 5.0, TypeError, "hook 'bad' returned 'float'"),
    ],
    ids=["fewer_elements", "more_dims", "dtype", "not_a_tensor"],
)
def test_hook_may_not_change_shape_dtype_or_type(leaf, bad, error, match):
    def bad_hook(g):
        return bad(g)

    bad_hook.__name__ = "bad"
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    target = x if leaf else x * 2
    target.register_hook(bad_hook)
    with pytest.raises(error, match=match):
        (target * 3).sum().backward()
    # PyTorch refuses the same hooks (its wording differs a little for the non-Tensor case).
    tx = torch.tensor([1.0, 2.0], requires_grad=True)
    ttarget = tx if leaf else tx * 2
    ttarget.register_hook(lambda g: bad(g))
    with pytest.raises((RuntimeError, TypeError)):
        (ttarget * 3).sum().backward()


def test_hook_that_removes_itself_does_not_skip_the_next():
    def f(M):
        x = M.tensor([1.0, 2.0], requires_grad=True)
        y = x * 2

        def once(g):
            handle.remove()
            return g * 10

        handle = y.register_hook(once)
        y.register_hook(lambda g: g + 1)
        (y * 1).sum().backward(retain_graph=True)
        first = x.grad.clone()
        x.grad = None
        (y * 1).sum().backward()
        return first, x.grad

    got, want = both(f)
    np.testing.assert_allclose(want[0], [22.0, 22.0])
    assert_same(got, want)


# ------------------------------------------------------------------ retain_grad


def test_retain_grad_twice_does_not_double():
    def f(M):
        x = M.tensor([1.0, 2.0], requires_grad=True)
        y = x * 2
        y.retain_grad()
        y.retain_grad()
        (y * y).sum().backward()
        return y.grad

    assert_same(*both(f))


@pytest.mark.parametrize("order", ["retain_first", "hook_first"])
def test_retained_grad_is_after_all_hooks(order):
    def f(M):
        x = M.tensor([1.0, 2.0], requires_grad=True)
        y = x * 2
        if order == "retain_first":
            y.retain_grad()
            y.register_hook(lambda g: g * 10)
        else:
            y.register_hook(lambda g: g * 10)
            y.retain_grad()
        y.register_hook(lambda g: g + 1)
        (y * 1).sum().backward()
        return y.grad, x.grad

    got, want = both(f)
    np.testing.assert_allclose(want[0], [11.0, 11.0])
    assert_same(got, want)


def test_retains_grad_property():
    def f(M):
        x = M.tensor([1.0, 2.0], requires_grad=True)
        y, z = x * 2, x * 3
        y.retain_grad()
        x.retain_grad()  # a no-op on a leaf
        return [x.retains_grad, y.retains_grad, z.retains_grad]

    got, want = both(f)
    assert want == [False, True, False]
    assert got == want


# ------------------------------------------------------------------ detach_


def test_detach_in_place_keeps_the_graph_already_recorded():
    def f(M):
        a = M.tensor([1.0, 2.0], requires_grad=True)
        y = a * 3
        z = y * 2
        y.detach_()
        z.sum().backward()
        return a.grad, y.grad is None, y.requires_grad, y.grad_fn is None

    got, want = both(f)
    np.testing.assert_allclose(want[0], [6.0, 6.0])
    assert_same(got, want)


# ------------------------------------------------------------------ in-place ops


def test_augmented_assignment_updates_in_place():
    def f(M):
        params = [M.tensor([1.0, 2.0], requires_grad=True)]
        p = params[0]
        (p * p).sum().backward()
        with M.no_grad():
            p -= 0.1 * p.grad
            p += 1
            p *= 2
            p /= 4
        return params[0], p is params[0]

    got, want = both(f)
    assert want[1] is True
    assert_same(got, want)


def test_augmented_assignment_on_leaf_requiring_grad_raises():
    p = gg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        p -= 1
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        torch.tensor([1.0, 2.0], requires_grad=True).sub_(1)
    y = gg.tensor([1.0, 2.0], requires_grad=True) * 1
    with pytest.raises(RuntimeError, match="can't be modified in place while recording"):
        y.mul_(2)  # the method is in place, and refuses; `y *= 2` is the out-of-place op


def test_augmented_assignment_on_recorded_tensors_matches_torch():
    # Loss accumulation, a residual add and a zero start: recorded, so out of place in
    # gpugrad, in place (recorded) in PyTorch; the same values and gradients either way.
    def run(m):
        w = m.tensor([1.0, 2.0], requires_grad=True)
        loss = 0
        for i in range(3):
            loss += (w * i).sum()
        h = w * 2
        h += w
        h *= w
        h -= 1
        h /= 2
        t = m.zeros(())
        t += h.sum()
        (loss + t).backward()
        return t.detach().numpy(), w.grad.numpy()

    ours, theirs = run(gg), run(torch)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b)


def test_in_place_integer_arithmetic_wraps_python_ints_as_torch():
    for op, value in (("sub", 1), ("add", 300), ("add", -1), ("mul", 300)):
        u, tu = gg.tensor([5, 7], dtype=gg.uint8), torch.tensor([5, 7], dtype=torch.uint8)
        getattr(u, f"__i{op}__")(value)
        getattr(tu, f"__i{op}__")(value)
        np.testing.assert_array_equal(u.numpy(), tu.numpy())
    u = gg.tensor([5, 7], dtype=gg.uint8)
    u -= gg.tensor([1, 2], dtype=gg.uint8)
    assert u.tolist() == [4, 5]
    with pytest.raises(RuntimeError, match="fill_: value 300 cannot be converted to type uint8"):
        gg.zeros(2, dtype=gg.uint8).fill_(300)


def test_a_hook_returning_a_held_tensor_does_not_alias_grad():
    fixed = gg.ones(2)
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    x.register_hook(lambda g: fixed)
    (x * 2).sum().backward()
    x.grad.zero_()
    assert fixed.tolist() == [1.0, 1.0]


@pytest.mark.parametrize(
    "make, op, value",
    [
        (lambda M: M.tensor([1, 2]), "mul_", 1.5),
        (lambda M: M.tensor([1, 2]), "div_", 2),
        (lambda M: M.tensor([1, 2]), "add_", "float_tensor"),
        (lambda M: M.tensor([True, False]), "add_", 1),
    ],
    ids=["int_mul_float", "int_div_int", "int_add_float_tensor", "bool_add_int"],
)
def test_inplace_refuses_a_cast_to_a_lower_category(make, op, value):
    def operand(M):
        return M.tensor([0.5, 0.5]) if value == "float_tensor" else value

    with pytest.raises(RuntimeError, match="can't be cast to the desired output type"):
        getattr(make(torch), op)(operand(torch))
    t = make(gg)
    before = t.dtype
    with pytest.raises(RuntimeError, match="can't be cast to the desired output type"):
        getattr(t, op)(operand(gg))
    assert t.dtype == before


def test_int_tensor_imul_by_float_raises_and_keeps_dtype():
    t = gg.tensor([1, 2])
    alias = t
    with pytest.raises(RuntimeError, match="float32 can't be cast to the desired output type "
                                           "int64"):
        t *= 1.5
    assert t is alias and t.dtype == gg.int64 and t.tolist() == [1, 2]


def test_inplace_casts_within_a_category_as_torch():
    def f(M):
        a = M.tensor([1.0], dtype=M.float16).add_(M.tensor([1.0], dtype=M.float64))
        b = M.tensor([1], dtype=M.int8).add_(M.tensor([1]))
        c = M.tensor([1.0, 2.0]).add_(M.tensor([1, 2]))
        d = M.tensor([True]).mul_(True)
        return [a, b, c, d, str(a.dtype).split(".")[-1], str(b.dtype).split(".")[-1]]

    assert_same(*both(f))


@pytest.mark.parametrize("op", ["add_", "sub_", "mul_", "div_", "copy_"])
def test_inplace_broadcasts_only_the_operand(op):
    with pytest.raises(RuntimeError, match="doesn't match the broadcast shape"):
        getattr(torch.ones(2), op)(torch.ones(2, 2))
    with pytest.raises(RuntimeError, match=rf"{op}: output with shape \(2,\) doesn't match the "
                                           r"broadcast shape \(2, 2\)"):
        getattr(gg.ones(2), op)(gg.ones(2, 2))
    with pytest.raises(RuntimeError, match="doesn't broadcast"):
        getattr(gg.ones(2), op)(gg.ones(3))
    got = getattr(gg.ones(2, 2), op)(gg.full((2,), 2.0))
    want = getattr(torch.ones(2, 2), op)(torch.full((2,), 2.0))
    np.testing.assert_allclose(got.numpy(), want.numpy())


def test_inplace_list_operand_with_alpha_is_a_vector():
    t = gg.tensor([1.0, 2.0]).add_([1.0, 1.0], alpha=2)
    assert t.tolist() == torch.tensor([1.0, 2.0]).add_(torch.tensor([1.0, 1.0]), alpha=2).tolist()


@pytest.mark.parametrize(
    "op, source",
    [
        ("copy_", lambda w: w),
        ("add_", lambda w: w),
        ("sub_", lambda w: w),
        ("mul_", lambda w: w),
        ("div_", lambda w: w),
        ("fill_", lambda w: w[0]),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_inplace_from_a_source_that_requires_grad_raises_while_recording(op, source):
    w = gg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=f"{op}: the source requires grad"):
        getattr(gg.zeros(2), op)(source(w))
    with gg.no_grad():
        got = getattr(gg.ones(2), op)(source(w))
    want = getattr(torch.ones(2), op)(source(torch.tensor([1.0, 2.0])))
    np.testing.assert_allclose(got.numpy(), want.numpy())
    # PyTorch records the op instead: the result requires grad.
    tw = torch.tensor([1.0, 2.0], requires_grad=True)
    assert getattr(torch.zeros(2), op)(source(tw)).requires_grad


# ------------------------------------------------------------------ gradient arrays


@pytest.mark.parametrize(
    "build",
    [
        lambda a: a.sum(),
        lambda a: a.mean(),
        lambda a: a[0].expand(3, 2).sum(),
        lambda a: (a.T * 1).sum(),
        lambda a: a.reshape(4).sum(),
    ],
    ids=["sum", "mean", "expand", "transpose", "reshape"],
)
def test_leaf_grad_is_a_writable_array_of_its_own(build):
    a = gg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    build(a).backward()
    d = a.grad.data
    assert d.flags.writeable and d.flags.c_contiguous and d.base is None
    with gg.no_grad():
        a.grad.mul_(2)
        a.grad.add_(1)
        a.grad[0] = 7.0
        a.grad.zero_()
    assert not a.grad.numpy().any()


def test_leaves_do_not_share_a_gradient_array():
    def f(M):
        a, b, c = (M.tensor([1.0, 2.0], requires_grad=True) for _ in range(3))
        ((a + b) * c).sum().backward()
        with M.no_grad():
            a.grad.mul_(5)
        return a.grad, b.grad

    got, want = both(f)
    np.testing.assert_allclose(want[1], [1.0, 2.0])
    assert_same(got, want)


def test_leaf_grad_is_not_the_seed_nor_a_retained_grad():
    seed = gg.ones(2)
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    x.backward(seed)
    assert not np.shares_memory(x.grad.data, seed.data)
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    y = x + 0
    y.retain_grad()
    y.sum().backward()
    assert not np.shares_memory(x.grad.data, y.grad.data)
    assert y.grad.data.flags.writeable
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 1
    (y + 0).sum().backward(inputs=[x, y])
    assert not np.shares_memory(x.grad.data, y.grad.data)


def test_accumulated_grad_does_not_alias_another_leaf():
    a = gg.tensor([1.0, 2.0], requires_grad=True)
    b = gg.tensor([1.0, 2.0], requires_grad=True)
    (a + b).sum().backward()
    (a + b).sum().backward()
    assert not np.shares_memory(a.grad.data, b.grad.data)
    np.testing.assert_allclose(a.grad.numpy(), [2.0, 2.0])


def test_create_graph_grad_stays_differentiable_when_copied():
    def f(M):
        x = M.tensor([1.0, 2.0], requires_grad=True)
        (x**2).sum().backward(create_graph=True)
        g = x.grad
        x.grad = None
        g.sum().backward()
        return x.grad, g.requires_grad

    assert_same(*both(f))


# ------------------------------------------------------------------ Tensor protocol


def test_comparison_with_none_and_non_numbers():
    def f(M):
        t = M.tensor([1.0, 2.0])
        return [t == None, t != None, t == "a", t != "a", t == object(),
                M.tensor(1.0) in [None, "a"], t == [1.0, 2.0]]

    got, want = both(f)
    assert want == [False, True, False, True, False, False, False]
    assert got == want
    assert type(got[0]) is bool


def test_comparison_with_numbers_and_tensors_stays_elementwise():
    def f(M):
        t = M.tensor([1.0, 2.0])
        return [t == 1, t != 2.0, t == M.tensor([1.0, 3.0])]

    assert_same(*both(f))


@pytest.mark.parametrize("conv, name", [(float, "float()"), (int, "int()")])
def test_scalar_conversion_names_the_caller(conv, name):
    with pytest.raises(ValueError, match=rf"{name[:-2]}\(\): only a one-element tensor .* "
                                         r"got shape \(2,\)"):
        conv(gg.tensor([1.0, 2.0]))
    assert conv(gg.tensor([2.5])) == conv(torch.tensor([2.5]))


def test_format_as_torch():
    assert f"{gg.tensor(2.5):.2f}" == f"{torch.tensor(2.5):.2f}" == "2.50"
    assert f"{gg.tensor(3):>4}" == f"{torch.tensor(3):>4}"
    assert f"{gg.tensor([2.5])}" == repr(gg.tensor([2.5]))
    with pytest.raises(TypeError):
        f"{torch.tensor([2.5]):.2f}"
    with pytest.raises(TypeError):
        f"{gg.tensor([2.5]):.2f}"


def test_repr_of_an_empty_tensor_shows_its_size():
    assert repr(gg.zeros(0, 3)) == repr(torch.zeros(0, 3)) == "tensor([], size=(0, 3))"
    assert repr(gg.zeros(0)) == repr(torch.zeros(0)) == "tensor([])"
    assert repr(gg.zeros(2, 0, requires_grad=True)) == "tensor([], size=(2, 0), requires_grad=True)"


def test_backward_with_empty_inputs_raises():
    for M in (gg, torch):
        x = M.tensor([1.0, 2.0], requires_grad=True)
        with pytest.raises(RuntimeError, match="inputs.* argument to .*backward.* cannot be empty"):
            (x * 2).sum().backward(inputs=[])


def test_the_other_augmented_assignments_are_in_place_as_torch():
    def run(m):
        x = m.tensor([2.0, 3.0])
        alias = x
        x **= 2
        x //= 2
        x %= 3
        i = m.tensor([6, 5])
        ialias = i
        i &= 3
        i |= 8
        i ^= 1
        return alias.numpy(), ialias.numpy(), x is alias, i is ialias

    ours, theirs = run(gg), run(torch)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)
    j = gg.tensor([1, 2])
    with pytest.raises(RuntimeError, match="pow_: result type float32 can't be cast"):
        j **= 0.5
    w = gg.tensor([1.0, 2.0], requires_grad=True)
    h = w * 1
    h **= 2  # recorded: the out-of-place op, with its gradient
    h.sum().backward()
    assert w.grad.tolist() == [2.0, 4.0]


def test_materialize_grads_gives_zeros_for_an_unused_input():
    torch = pytest.importorskip("torch")
    a = gg.tensor([1.0, 2.0], requires_grad=True)
    b = gg.tensor([3.0], requires_grad=True)
    ga, gb = gg.autograd.grad((a * 2).sum(), [a, b], materialize_grads=True)
    ta = torch.tensor([1.0, 2.0], requires_grad=True)
    tb = torch.tensor([3.0], requires_grad=True)
    tga, tgb = torch.autograd.grad((ta * 2).sum(), [ta, tb], materialize_grads=True)
    np.testing.assert_array_equal(ga.numpy(), tga.numpy())
    np.testing.assert_array_equal(gb.numpy(), tgb.numpy())
    assert gb.dtype == b.dtype and gb.device == b.device
