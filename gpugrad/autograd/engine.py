"""The backward pass: walk the tape in reverse topological order, iteratively.

Gradients flowing into a node's outputs are summed per (node, output index); a node runs once
every consumer of its outputs has run (Kahn's algorithm), so a 100 000-op chain needs no
recursion. Leaves get their gradients accumulated into `.grad`; `grad()` returns them instead.
"""

from __future__ import annotations

from gpugrad import backend
from gpugrad import grad_mode
from gpugrad.autograd import function
from gpugrad.tensor import Tensor


def _as_tuple(x):
    if x is None:
        return ()
    if isinstance(x, Tensor):
        return (x,)
    return tuple(x)


def _seed_gradients(outputs, grad_outputs):
    """One gradient Tensor per output; the implicit 1 only for scalars, as in PyTorch."""
    if len(grad_outputs) == 0:
        grad_outputs = (None,) * len(outputs)
    if len(grad_outputs) != len(outputs):
        raise RuntimeError(
            f"backward: got {len(outputs)} outputs but {len(grad_outputs)} gradients"
        )
    seeds = []
    for out, g in zip(outputs, grad_outputs):
        if not out.requires_grad:
            raise RuntimeError(
                "backward: element of tensors does not require grad and does not have a grad_fn"
            )
        if g is None:
            if out.data.size != 1:
                raise RuntimeError(
                    f"backward: grad can be implicitly created only for scalar outputs, "
                    f"got shape {out.shape}; pass `gradient=`"
                )
            xp = backend.array_module(out.data)
            g = Tensor(xp.ones(out.shape, dtype=out.dtype), out.device)
        elif not isinstance(g, Tensor):
            raise TypeError(f"backward: gradient must be a Tensor, got {type(g).__name__}")
        elif g.shape != out.shape:
            raise RuntimeError(
                f"backward: gradient has shape {g.shape} but the output has shape {out.shape}"
            )
        elif g.device != out.device:
            raise RuntimeError(
                f"backward: gradient is on {g.device} but the output is on {out.device}"
            )
        elif g.dtype != out.dtype:
            # As PyTorch's engine does: the gradient takes the output's dtype, so every op's
            # backward sees a gy of its own output's dtype.
            g = g.to(out.dtype)
        seeds.append(g)
    return seeds


def _topological_counts(roots):
    """For each reachable node, how many gradient contributions it waits for."""
    pending = {}
    seen = set(roots)
    stack = list(roots)
    while stack:
        fn = stack.pop()
        if fn.released:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or to access saved "
                "tensors after they have already been freed). Saved intermediate values of "
                "the graph are freed when you call .backward() or autograd.grad(). Specify "
                "retain_graph=True if you need to backward through the graph a second time."
            )
        for x in fn.inputs:
            parent = x.grad_fn
            if parent is not None:
                pending[parent] = pending.get(parent, 0) + 1
                if parent not in seen:
                    seen.add(parent)
                    stack.append(parent)
    return pending


def _run_hooks(tensor, grad):
    for hook in tensor._hooks:
        new = hook(grad)
        if new is not None:
            grad = new
    return grad


def _accumulate(store: dict, key, g):
    old = store.get(key)
    store[key] = g if old is None else old + g


def run_backward(outputs, grad_outputs, retain_graph, create_graph, targets=None):
    """The shared engine of `backward()` and `grad()`.

    With `targets` (a tuple of tensors) the gradients of those tensors are returned and no
    `.grad` is touched; without, every leaf that requires grad accumulates into `.grad`.
    """
    from gpugrad.ops import sum_to

    if retain_graph is None:
        retain_graph = create_graph
    seeds = _seed_gradients(outputs, grad_outputs)

    target_leaves = {}
    target_nodes = {}
    if targets is not None:
        for i, t in enumerate(targets):
            if t.grad_fn is None:
                target_leaves.setdefault(id(t), []).append(i)
            else:
                target_nodes.setdefault((t.grad_fn, t._out_idx), []).append(i)
    results = [None] * (len(targets) if targets is not None else 0)

    def deliver_leaf(x, g):
        if targets is not None:
            for i in target_leaves.get(id(x), ()):
                results[i] = g if results[i] is None else results[i] + g
            return
        if x._hooks:
            g = _run_hooks(x, g)
        if not create_graph and g.grad_fn is not None:
            g = g.detach()
        if x.grad is None:
            x.grad = g
        else:
            x.grad = x.grad + g if create_graph else Tensor(x.grad.data + g.data, x.device)

    grads = {}
    roots = []
    for out, g in zip(outputs, seeds):
        if out.grad_fn is None:
            deliver_leaf(out, g)
        else:
            _accumulate(grads, (out.grad_fn, out._out_idx), g)
            if out.grad_fn not in roots:
                roots.append(out.grad_fn)

    pending = _topological_counts(roots)
    ready = [fn for fn in roots if pending.get(fn, 0) == 0]

    with grad_mode.set_grad_enabled(create_graph):
        while ready:
            fn = ready.pop()
            gys = []
            any_grad = False
            for i in range(len(fn.out_meta)):
                g = grads.pop((fn, i), None)
                if g is not None:
                    any_grad = True
                    out = fn.outputs[i]()
                    if out is not None and out._hooks:
                        g = _run_hooks(out, g)
                    if target_nodes:
                        for j in target_nodes.get((fn, i), ()):
                            results[j] = g
                gys.append(g)
            if any_grad:
                gys = [
                    g if g is not None else _zeros(shape, dtype, fn.inputs[0])
                    for g, (shape, dtype) in zip(gys, fn.out_meta)
                ]
                if _anomaly_check is None:
                    gxs = _call_backward(fn, gys)
                else:
                    _anomaly_check.before(fn)
                    try:
                        gxs = _call_backward(fn, gys)
                    finally:
                        _anomaly_check.done(fn)
                    _anomaly_check.after(fn, gys, gxs)
            else:
                gxs = (None,) * len(fn.inputs)
            for x, gx, needed in zip(fn.inputs, gxs, fn.needs_input_grad):
                parent = x.grad_fn
                if gx is not None and needed:
                    if gx.data.shape != x.data.shape:
                        gx = sum_to(gx, x.shape)
                    if gx.data.dtype is not x.data.dtype and gx.data.dtype != x.data.dtype:
                        gx = gx.to(x.dtype)
                    if parent is None:
                        deliver_leaf(x, gx)
                    else:
                        _accumulate(grads, (parent, x._out_idx), gx)
                if parent is not None:
                    pending[parent] -= 1
                    if pending[parent] == 0:
                        ready.append(parent)
            if not retain_graph:
                fn.release()
    return results


def _call_backward(fn, gys):
    if function._profiler is None:
        gxs = fn.backward(*gys)
    else:
        gxs = function._profiler.time_backward(fn, gys)
    return gxs if isinstance(gxs, tuple) else (gxs,)


def _zeros(shape, dtype, like: Tensor) -> Tensor:
    xp = backend.array_module(like.data)
    return Tensor(xp.zeros(shape, dtype=dtype), like.device)


_anomaly_check = None  # set by detect_anomaly(): an object with before(fn), done(fn), after(fn, gys, gxs)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate the gradients of `tensors` into the `.grad` of the leaves of their graph."""
    outputs = _as_tuple(tensors)
    grads = _as_tuple(grad_tensors)
    if inputs is not None:
        inputs = _as_tuple(inputs)
        found = run_backward(outputs, grads, retain_graph, create_graph, targets=inputs)
        for x, g in zip(inputs, found):
            if g is not None:
                g = g if create_graph else g.detach()
                x.grad = g if x.grad is None else x.grad + g
        return
    run_backward(outputs, grads, retain_graph, create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False, materialize_grads=False):
    """The gradients of `outputs` with respect to `inputs`, returned as a tuple."""
    single = isinstance(inputs, Tensor)
    inputs = _as_tuple(inputs)
    for i, x in enumerate(inputs):
        if not x.requires_grad:
            raise RuntimeError(f"grad: input {i} does not require grad")
    found = run_backward(_as_tuple(outputs), _as_tuple(grad_outputs), retain_graph,
                         create_graph, targets=inputs)
    results = []
    for i, (x, g) in enumerate(zip(inputs, found)):
        if g is None:
            if materialize_grads:
                g = _zeros(x.shape, x.dtype, x)
            elif not allow_unused:
                raise RuntimeError(
                    f"grad: input {i} was not used in the graph of the outputs; "
                    "pass allow_unused=True if this is expected"
                )
        elif not create_graph:
            g = g.detach()
        results.append(g)
    return tuple(results) if not single or len(results) != 1 else tuple(results)
