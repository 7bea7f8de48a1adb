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
