"""`gg.cuda`: is CUDA usable, how many devices, and synchronisation."""

from __future__ import annotations

from gpugrad import backend


def is_available() -> bool:
    """True when CuPy sees a GPU (or Numba's CUDA simulator backs the 'cuda' device)."""
    return backend.cuda_is_available()


def device_count() -> int:
    return backend.cuda_device_count()


def synchronize() -> None:
    """Wait for the GPU's queued work; raises without CUDA, as PyTorch does."""
    dev = backend.device("cuda")
    if not is_available():
        raise RuntimeError(f"gpugrad.cuda.synchronize: device {dev} requested but CUDA is "
                           f"unavailable: {backend.cuda_unavailable_reason()}")
    backend.synchronize(dev)


def is_simulated() -> bool:
    """True when 'cuda' tensors run in Numba's CUDA simulator on NumPy arrays."""
    return backend.uses_simulated_cuda()


def manual_seed(seed: int) -> None:
    """Seed every CUDA device's generator; the CPU's goes on as it was (as in PyTorch)."""
    backend.manual_seed_cuda(seed)


manual_seed_all = manual_seed
