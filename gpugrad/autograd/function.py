"""`Function`: one op on the tape — forward on raw arrays, backward on Tensors.

An op subclasses Function and writes
    forward(self, *arrays, **params) -> array or tuple of arrays
    backward(self, *gys) -> one Tensor (or None) per input
Forward may keep what backward needs on `self`. Backward is written with gpugrad's own ops, so
when the engine runs it with recording on (`create_graph=True`) the gradient is itself
differentiable. Broadcasting is undone once, by the engine, not by each op.

The node holds its inputs strongly and its outputs weakly: a graph is kept alive by the tensors
a user holds at its end, and there are no reference cycles between a tensor and its grad_fn.
An op whose backward reads none of its inputs (add, subtract, negate, ReLU, which keeps its
output, reshapes, casts...) sets `keeps_inputs = False`: its node then holds only the leaves
that require grad among its inputs (the engine finds the others' shape and dtype in their
producers' out_meta), so that, as in PyTorch, an intermediate result (or a constant) nobody
needs for backward is freed during the forward instead of living until the backward (in a
ResNet, every batch-norm output before a ReLU and every residual sum).
"""

from __future__ import annotations

import weakref

from gpugrad import backend, grad_mode
from gpugrad.tensor import Tensor

_anomaly_hook = None  # set by detect_anomaly(): called with (fn, inputs, outputs) after forward
_profiler = None  # set by gg.profiler.profile(): told the time of each forward


class Function:
    # Set on a node that records: inputs (Tensors), needs_input_grad (bools), parents (per
    # input, None for a leaf or the (node, output index) that produced it, the engine's key),
    # outputs (weakrefs), out_meta (shape, dtype) per output. `released` after a backward that
    # did not retain the graph.
    inputs = None
    released = False
    save_outputs = False  # ops whose backward reuses their output set this
    keeps_inputs = True  # False on ops whose backward reads no input (see the module doc)
    trace = None  # the user's stack, recorded under detect_anomaly()
    produces_nonfinite = False  # True on a node whose output may hold inf by design

    def forward(self, *arrays, **params):
        raise NotImplementedError

    def backward(self, *gys):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs: Tensor, **params):
        fn = cls()
        dev = None
        for t in inputs:
            if not isinstance(t, Tensor):
                # A list or an array where a Tensor belongs (F.relu([1.0])): say so, by op.
                # (NumPy 2 arrays have a `device` too, so the check must be by type.)
                kinds = ", ".join(type(t).__name__ for t in inputs)
                raise TypeError(f"{cls.__name__.lower()}: expected Tensor inputs, got {kinds}")
            if dev is None:
                dev = t.device
            elif t.device is not dev and t.device != dev:
                raise RuntimeError(
                    f"{cls.__name__.lower()}: expected all tensors on the same device, "
                    f"got {dev} and {t.device}"
                )
        fn.device = dev  # kernels dispatch on it (a simulated CUDA array is a NumPy array)
        arrays = [t.data for t in inputs]
        if dev.type == "cuda":
            # CuPy and the kernels allocate on the current GPU: make it the inputs' GPU.
            with backend.device_context(dev):
                ys = fn._run_forward(arrays, params)
        else:
            ys = fn._run_forward(arrays, params)
        multi = type(ys) is tuple
        ys_tuple = ys if multi else (ys,)
        outputs = tuple([Tensor(y, dev) for y in ys_tuple])
        needs = None
        if grad_mode.is_grad_enabled():
            needs = tuple([t._requires_grad for t in inputs])
        if needs is not None and True in needs:
            if fn.keeps_inputs:
                fn.inputs = inputs
            else:
                # The leaves that require grad stay (the engine sets their .grad through them);
                # a produced input is reached through `parents`, whose out_meta has its shape
                # and dtype; a constant (a mask, a detached term) is not needed at all.
                fn.inputs = tuple([t if t.grad_fn is None and t._requires_grad else None
                                   for t in inputs])
            fn.needs_input_grad = needs
            # The links to the producers, as they are now: a later `x.detach_()` on an input
            # must not cut the graph recorded through it (PyTorch keeps those edges too).
            fn.parents = tuple([None if t.grad_fn is None else (t.grad_fn, t._out_idx)
                                for t in inputs])
            fn.outputs = tuple([weakref.ref(o) for o in outputs])
            fn.out_meta = tuple([(y.shape, y.dtype) for y in ys_tuple])
            if fn.save_outputs:
                # The arrays, not the Tensors: a Tensor here would be a reference cycle.
                fn.saved_arrays = ys_tuple
            for i, o in enumerate(outputs):
                if o.data.dtype.kind == "f":
                    o._requires_grad = True
                    o.grad_fn = fn
                    o._out_idx = i
        if _anomaly_hook is not None:
            _anomaly_hook(fn, inputs, outputs)
        return outputs if multi else outputs[0]

    def _run_forward(self, arrays, params):
        if _profiler is None:
            return self.forward(*arrays, **params)
        return _profiler.time_forward(self, arrays, params)

    def saved_output(self, i: int = 0) -> Tensor:
        """Output `i` as a Tensor in the graph (for backward formulas that reuse it)."""
        out = self.outputs[i]()
        if out is None:
            # The user's tensor is gone; rebuild it around the saved array, still in the graph.
            out = Tensor(self.saved_arrays[i], self.device)
            out._requires_grad = True
            out.grad_fn = self
            out._out_idx = i
        return out

    def release(self) -> None:
        """Drop everything held for backward (inputs and saved arrays)."""
        self.__dict__.clear()
        self.released = True
