"""The backward pass: walk the tape in reverse topological order, iteratively.

Gradients flowing into a node's outputs are summed per (node, output index); a node runs once
every consumer of its outputs has run (Kahn's algorithm), so a 100 000-op chain needs no
recursion. A tensor's hooks see its summed gradient, once (a leaf's after the walk). Leaves get
their gradients accumulated into `.grad`; `grad()` returns them instead.
"""

from __future__ import annotations

from gpugrad import backend
from gpugrad import grad_mode
from gpugrad import host_cache
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
        for link in fn.parents:
            if link is not None:
                parent = link[0]
                pending[parent] = pending.get(parent, 0) + 1
                if parent not in seen:
                    seen.add(parent)
                    stack.append(parent)
    return pending


def _run_hooks(hooks, grad, claimed=None):
    # Over a copy: a hook that removes itself must not make the next one skip.
    for hook in tuple(hooks):
        new = hook(grad)
        if new is not None:
            grad = _checked_hook_result(hook, new, grad)
            if claimed is not None:
                claimed.add(id(grad.data))  # the hook's caller may hold it: .grad gets a copy
    return grad


def _checked_hook_result(hook, new, grad):
    """A hook may replace the gradient, but not with one of another shape, dtype or device:
    the engine would broadcast or sum it silently (PyTorch raises the same way)."""
    name = getattr(hook, "__name__", type(hook).__name__)
    if not isinstance(new, Tensor):
        raise TypeError(
            f"expected a Tensor or None, but hook '{name}' returned '{type(new).__name__}'"
        )
    if new.shape != grad.shape:
        raise RuntimeError(
            f"hook '{name}' has changed the size of value (was {tuple(grad.shape)} got "
            f"{tuple(new.shape)})"
        )
    if new.dtype != grad.dtype:
        raise RuntimeError(
            f"hook '{name}' has changed the type of value (was {grad.dtype} got {new.dtype})"
        )
    if new.device != grad.device:
        raise RuntimeError(
            f"hook '{name}' has changed the device of value (was {grad.device} got {new.device})"
        )
    return new


def _accumulate(store: dict, key, g):
    old = store.get(key)
    store[key] = g if old is None else old + g


def _is_owned(arr) -> bool:
    """Whether `arr` is a C-contiguous, writable array that is no view of another one."""
    flags = arr.flags
    # CuPy arrays are always writable and have no `writeable` flag.
    return arr.base is None and flags.c_contiguous and getattr(flags, "writeable", True)


def _owned_grad(g: Tensor, claimed: set) -> Tensor:
    """`g`, or a copy of it, such that the array is the stored gradient's alone.

    Backward formulas return broadcast views (read-only, zero strides) and hand one gradient
    to several inputs (add's gy); stored as `.grad` as is, `a.grad.zero_()` would fail or
    change `b.grad` too. `claimed` holds the ids of the arrays user code has seen or a `.grad`
    already holds: those are copied as well. An id reused by a new array only costs a copy.
    """
    arr = g.data
    if id(arr) not in claimed and _is_owned(arr):
        claimed.add(id(arr))
        return g
    if g.grad_fn is not None:
        return g.clone()  # create_graph: the copy stays in the graph
    out = _copy(arr)
    claimed.add(id(out))
    return Tensor(out, g.device)


def _copy(arr):
    """A C-contiguous copy on the array's own module and device."""
    if arr.nbytes < host_cache.MIN_BYTES:
        return arr.copy()  # a few µs less than the cache's bookkeeping, for small arrays
    out = backend.empty_like(arr)  # a large CPU array reuses cached pages: no page faults
    out[...] = arr
    return out


def _store_grad(x: Tensor, g: Tensor, create_graph: bool, claimed: set) -> None:
    """Accumulate `g` into `x.grad` (a leaf's, a retained or an `inputs=` one)."""
    if not create_graph and g.grad_fn is not None:
        g = g.detach()
    if x.grad is None:
        x.grad = _owned_grad(g, claimed)
    elif create_graph:
        x.grad = x.grad + g
    else:
        x.grad = Tensor(x.grad.data + g.data, x.device)


def run_backward(outputs, grad_outputs, retain_graph, create_graph, targets=None,
                 into_grad=False):
    """The shared engine of `backward()` and `grad()`.

    With `targets` (a tuple of tensors) the gradients of those tensors are returned, or with
    `into_grad` accumulated into their `.grad`; without, every leaf that requires grad
    accumulates into `.grad`. A leaf's contributions are summed before its hooks run, once.
    """
    from gpugrad.ops import sum_to

    if retain_graph is None:
        retain_graph = create_graph
    seeds = _seed_gradients(outputs, grad_outputs)
    claimed = {id(g.data) for g in seeds}  # the caller may hold these

    target_leaves = {}
    target_nodes = {}
    if targets is not None:
        for i, t in enumerate(targets):
            if t.grad_fn is None:
                target_leaves.setdefault(id(t), []).append(i)
            else:
                target_nodes.setdefault((t.grad_fn, t._out_idx), []).append(i)
    results = [None] * (len(targets) if targets is not None else 0)

    # id(leaf) -> [leaf, summed gradient], in the order the leaves are first reached.
    leaf_grads = {}

    def add_leaf_grad(x, g):
        if targets is not None and id(x) not in target_leaves:
            return
        entry = leaf_grads.get(id(x))
        if entry is None:
            leaf_grads[id(x)] = [x, g]
        else:
            entry[1] = entry[1] + g

    def node_grad(out, hooks, g, key):
        """The gradient of a recorded output: its hooks, retain_grad, and `targets`. `hooks`:
        the output's hook list (from its node where the Tensor object is gone)."""
        if hooks:
            claimed.add(id(g.data))  # the hooks may keep it
            g = _run_hooks(hooks, g, claimed)
        if out is not None and out._retains_grad:
            _store_grad(out, g, create_graph, claimed)
        if target_nodes:
            for j in target_nodes.get(key, ()):
                if into_grad and not (out is not None and out._retains_grad):
                    _store_grad(targets[j], g, create_graph, claimed)
                else:
                    results[j] = g
        return g

    def finish_leaves():
        for x, g in leaf_grads.values():
            if x._hooks:
                claimed.add(id(g.data))  # the hooks may keep it
                g = _run_hooks(x._hooks, g, claimed)
            if targets is None or into_grad:
                _store_grad(x, g, create_graph, claimed)
            else:
                for i in target_leaves[id(x)]:
                    results[i] = g

    grads = {}
    roots = []
    for out, g in zip(outputs, seeds):
        if out.grad_fn is None:
            add_leaf_grad(out, g)
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
                key = (fn, i)
                g = grads.pop(key, None)
                if g is not None:
                    any_grad = True
                    out = fn.outputs[i]()
                    hooks = out._hooks if out is not None else _orphaned_hooks(fn, i)
                    if hooks is not None or target_nodes:
                        g = node_grad(out, hooks, g, key)
                gys.append(g)
            if any_grad:
                gys = [
                    g if g is not None else _zeros(shape, dtype, fn.device)
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
            for x, gx, needed, link in zip(fn.inputs, gxs, fn.needs_input_grad, fn.parents):
                if gx is not None and needed:
                    if x is not None:
                        shape, dtype = x.data.shape, x.data.dtype
                    else:  # an input the node did not keep (Function.keeps_inputs)
                        shape, dtype = link[0].out_meta[link[1]]
                    if gx.data.shape != shape:
                        gx = sum_to(gx, shape)
                    if gx.data.dtype is not dtype and gx.data.dtype != dtype:
                        gx = gx.to(dtype)
                    if link is None:
                        add_leaf_grad(x, gx)
                    else:
                        _accumulate(grads, link, gx)
                if link is not None:
                    parent = link[0]
                    pending[parent] -= 1
                    if pending[parent] == 0:
                        ready.append(parent)
            if not retain_graph:
                fn.release()
        finish_leaves()
    return results


def _call_backward(fn, gys):
    if function._profiler is None:
        gxs = fn.backward(*gys)
    else:
        gxs = function._profiler.time_backward(fn, gys)
    return gxs if isinstance(gxs, tuple) else (gxs,)


def _zeros(shape, dtype, device) -> Tensor:
    with backend.device_context(device):
        return Tensor(backend.xp_for(device).zeros(shape, dtype=dtype), device)


def _orphaned_hooks(fn, i):
    """The hooks of output `i` of `fn` whose Tensor object is gone (Tensor.register_hook keeps
    a non-leaf's hook list on its node too, as PyTorch keeps them on grad_fn)."""
    hooks = fn.__dict__.get("output_hooks")
    return None if hooks is None else hooks.get(i)


_anomaly_check = None  # set by detect_anomaly(): an object with before(fn), done(fn), after(fn, gys, gxs)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate the gradients of `tensors` into the `.grad` of the leaves of their graph."""
    outputs = _as_tuple(tensors)
    grads = _as_tuple(grad_tensors)
    if inputs is not None:
        inputs = _as_tuple(inputs)
        if not inputs:
            raise RuntimeError("'inputs' argument to backward() cannot be empty")
        run_backward(outputs, grads, retain_graph, create_graph, targets=inputs,
                     into_grad=True)
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
                g = _zeros(x.shape, x.dtype, x.device)
            elif not allow_unused:
                raise RuntimeError(
                    f"grad: input {i} was not used in the graph of the outputs; "
                    "pass allow_unused=True if this is expected"
                )
        elif not create_graph:
            g = g.detach()
        results.append(g)
    return tuple(results) if not single or len(results) != 1 else tuple(results)
