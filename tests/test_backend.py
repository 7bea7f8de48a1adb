"""Devices, CUDA availability and its errors, device mismatches."""

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import backend


def test_device_parsing():
    assert gg.device("cpu").type == "cpu" and gg.device("cpu").index is None
    d = gg.device("cuda:1")
    assert (d.type, d.index) == ("cuda", 1) and str(d) == "cuda:1"
    assert gg.device("cuda") == gg.device("cuda", 0) == "cuda:0"
    for bad in ("gpu", "cuda:x", "cpu:1", "cuda:"):
        with pytest.raises(ValueError, match="device"):
            gg.device(bad)
    with pytest.raises(TypeError):
        gg.device(3)


def test_cuda_without_gpu_raises_with_install_hint():
    if gg.cuda.is_available():
        pytest.skip("CUDA is usable here")
    assert gg.cuda.device_count() == 0
    with pytest.raises(RuntimeError, match="CUDA is unavailable") as info:
        gg.zeros(3, device="cuda")
    msg = str(info.value)
    assert "cupy" in msg.lower() or "gpu" in msg.lower()


def test_operands_on_different_devices_raise_naming_both():
    a = gg.zeros(2)
    b = gg.zeros(2)
    b.device = gg.device("cuda", 0)  # a stand-in: only the device tag is compared
    with pytest.raises(RuntimeError, match="cpu and cuda:0"):
        a + b
    with pytest.raises(RuntimeError, match="cpu and cuda:0"):
        gg.cat([a, b])


def test_xp_and_transfers_on_cpu():
    assert backend.xp_for(gg.device("cpu")) is np
    a = np.arange(3)
    assert backend.to_device(a, gg.device("cpu")) is a
    assert backend.to_numpy(a) is a


@pytest.mark.parametrize("a_shape, b_shape", [
    ((3, 4), (4, 5)),
    ((2, 3, 4), (2, 4, 5)),
    ((2, 1, 3, 4), (5, 4, 6)),  # broadcast batch dims
    ((1, 600, 700), (1, 700, 512)),  # large: the output comes from the buffer cache
])
@pytest.mark.parametrize("dtypes", [(np.float32, np.float32), (np.float32, np.float64)])
def test_matmul_matches_numpy_and_caches_large_outputs(a_shape, b_shape, dtypes):
    from gpugrad import host_cache

    rng = np.random.default_rng(0)
    a = rng.standard_normal(a_shape).astype(dtypes[0])
    b = rng.standard_normal(b_shape).astype(dtypes[1])
    out = backend.matmul(a, b)
    expected = np.matmul(a, b)
    assert out.shape == expected.shape and out.dtype == expected.dtype
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)
    assert out.flags.owndata == (out.nbytes < host_cache.MIN_BYTES)


def test_cuda_manual_seed_leaves_the_cpu_stream_alone():
    # As torch.cuda.manual_seed: only CUDA generators are seeded.
    gg.manual_seed(0)
    a = gg.randn(3).numpy()
    gg.manual_seed(0)
    gg.cuda.manual_seed(5)
    np.testing.assert_array_equal(gg.randn(3).numpy(), a)
    gg.manual_seed(0)  # and the global seed takes the CUDA one back
    assert gg.backend._cuda_seed is None
