"""Function.keeps_inputs: an op that says its backward reads no input gets a node without its
produced inputs; the claim is checked here for every op in gpugrad.ops."""

import importlib
import inspect
import pkgutil

import gpugrad.ops as ops
from gpugrad.autograd.function import Function


def _op_functions():
    for info in pkgutil.iter_modules(ops.__path__):
        module = importlib.import_module(f"gpugrad.ops.{info.name}")
        for obj in vars(module).values():
            if (inspect.isclass(obj) and issubclass(obj, Function)
                    and obj.__module__ == module.__name__):
                yield obj


def test_an_op_that_drops_its_inputs_never_reads_them_in_backward():
    """A node with keeps_inputs = False has None for its produced inputs: any `self.inputs` in
    its class (or a base it inherits backward from) would read None."""
    dropping = [cls for cls in _op_functions() if not cls.keeps_inputs]
    assert {"Add", "Relu", "MaxPool2d", "Reshape"} <= {cls.__name__ for cls in dropping}
    for cls in dropping:
        for base in cls.__mro__:
            if base in (Function, object):
                break
            assert "self.inputs" not in inspect.getsource(base), (
                f"{cls.__name__} sets keeps_inputs = False but {base.__name__} reads self.inputs"
            )
