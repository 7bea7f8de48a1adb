"""Keep numba-cuda importable on NumPy 2.5.

NumPy 2.5 removed ``np.row_stack`` (an alias of ``np.vstack`` since NumPy 2.0), but numba-cuda
0.30 still registers an overload for it while it loads its typing registries, on the first CUDA
compilation: there it fails with "module 'numpy' has no attribute 'row_stack'" and no CUDA
kernel can compile (seen on the H200 image: NumPy 2.5.2, numba-cuda 0.30.4). Restoring the alias
before any kernel compiles lets numba-cuda load; ``row_stack`` meant exactly ``vstack``, so no
code sees a different function than it would have on NumPy 2.4.
"""

from __future__ import annotations

import numpy as np


def restore_removed_aliases(module=np) -> None:
    """Give `module` (NumPy) back the aliases numba-cuda still names, where they are missing."""
    if not hasattr(module, "row_stack"):
        module.row_stack = module.vstack


restore_removed_aliases()
