"""Cross-entropy inputs that the CUDA kernels' tests share (simulator and GPU alike)."""

import numpy as np


def infinite_and_nan_rows(dtype):
    """(logits, target): 6 rows of 1100 classes a one-pass forward must handle as the
    reference does: -inf in a lane's first loads and finite later, a row of -inf only, a NaN,
    +inf, lanes that see only -inf, logits of 1e4. 1100 classes make full unguarded trips
    before the guarded last one."""
    logits = np.random.default_rng(1).standard_normal((6, 1100)).astype(dtype)
    logits[0, :600] = -np.inf
    logits[1, :] = -np.inf
    logits[2, 250] = np.nan
    logits[3, 7] = np.inf
    logits[4, ::2] = -np.inf  # even lanes see -inf only
    logits[5] *= 1e4
    return logits, np.array([1000, 3, 1, 2, 1, 5])
