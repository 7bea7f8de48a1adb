"""Device math the CUDA kernels share where Numba's own lowering costs more than it must.

exp2_flush(x): 2^x. In float32 it is the hardware's ex2 with denormals flushed to zero
(PTX ex2.approx.ftz.f32: one MUFU.EX2 instruction on sm_90). Numba's math.exp2 on float32
becomes ex2.approx.f32 without ftz, which ptxas wraps in a denormal fix-up: a compare and two
predicated multiplies around the same MUFU.EX2, four instructions instead of one (seen with
ptxas and nvdisasm from CUDA 13 for sm_90; `kernels/loss_cuda.py` says where it is used).
The two agree to the bit wherever 2^x is a normal float32, that is for x >= -126; below, 2^x
is under 1.2e-38 and flushes to 0. In float64 it is what math.exp2 compiles to (libdevice's
exp2, not an approximation). Under the CUDA simulator, kernels run as Python: math.exp2 stands
in for both.
"""

from __future__ import annotations

import math

import numba
from numba import types

if numba.config.ENABLE_CUDASIM:

    def exp2_flush(x):
        return math.exp2(x)

else:
    from llvmlite import ir
    from numba.core import cgutils
    from numba.cuda.extending import intrinsic

    @intrinsic
    def exp2_flush(typingctx, x):
        if x == types.float32:

            def codegen(context, builder, sig, args):
                f32 = ir.FloatType()
                fn = cgutils.get_or_insert_function(
                    builder.module, ir.FunctionType(f32, [f32]), "llvm.nvvm.ex2.approx.ftz.f")
                return builder.call(fn, args)

            return types.float32(types.float32), codegen
        if x == types.float64:

            def codegen(context, builder, sig, args):
                return context.get_function(math.exp2, sig)(builder, args)

            return types.float64(types.float64), codegen
        return None  # no other types: Numba reports the call as untyped
