"""gpugrad's hot-path kernels (installed as ``gpugrad.kernels``)."""
