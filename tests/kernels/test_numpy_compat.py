"""numba-cuda 0.30 names np.row_stack, which NumPy 2.5 removed: gpugrad.kernels restores it."""

import types

import numpy as np
import pytest

import gpugrad.kernels  # noqa: F401  (importing it installs the alias)
from gpugrad.kernels import _numpy_compat


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # NumPy 2.0-2.4 deprecate the alias
def test_row_stack_is_vstack_after_import():
    stacked = np.row_stack([np.arange(3), np.arange(3, 6)])
    np.testing.assert_array_equal(stacked, np.vstack([np.arange(3), np.arange(3, 6)]))


def test_missing_alias_is_restored_and_present_one_kept():
    fake = types.SimpleNamespace(vstack=np.vstack)  # a NumPy without row_stack
    _numpy_compat.restore_removed_aliases(fake)
    assert fake.row_stack is np.vstack
    own = object()
    fake = types.SimpleNamespace(vstack=np.vstack, row_stack=own)
    _numpy_compat.restore_removed_aliases(fake)
    assert fake.row_stack is own
