"""gpugrad's hot-path kernels (installed as ``gpugrad.kernels``).

One module per family: ``conv`` (im2col / col2im), ``conv_winograd`` (Winograd F(2x2, 3x3)
transforms, CPU only), ``conv_winograd_blocked`` (Winograd passes a few images at a time,
channels last, CPU only), ``loss`` (fused softmax cross-entropy), ``activation`` (ReLU), ``pool``
(max-pooling). Each has a NumPy reference (the test oracle), a Numba CPU twin and a
dispatcher that picks by device; the Numba CUDA kernels sit in the matching ``*_cuda`` module,
imported on the first CUDA call. Importing this package compiles nothing and needs no GPU.

``GPUGRAD_KERNELS=reference`` (read at import), ``use_reference(True)`` or ``with
reference_mode():`` send every call to the NumPy reference instead, on either device.
``GPUGRAD_CONV_ALGO`` / ``use_conv_algorithm`` choose conv2d's CPU algorithm (auto, im2col,
winograd). ``GPUGRAD_CUDA_LAUNCHER`` / ``use_cuda_launcher`` choose how CUDA kernels are
launched (cupy, numba).
"""

# First: numba-cuda must find NumPy as it expects before any CUDA kernel compiles.
from gpugrad.kernels import _numpy_compat  # noqa: F401  (isort: skip)
from gpugrad.kernels.activation import (
    relu_backward,
    relu_backward_reference,
    relu_forward,
    relu_reference,
)
from gpugrad.kernels.config import (
    CONV_ALGORITHMS,
    CUDA_LAUNCHERS,
    conv_algorithm,
    conv_algorithm_mode,
    cuda_launcher,
    cuda_launcher_mode,
    reference_enabled,
    reference_mode,
    use_conv_algorithm,
    use_cuda_launcher,
    use_reference,
)
from gpugrad.kernels.conv import (
    LAYOUTS,
    col2im,
    col2im_reference,
    conv_output_size,
    im2col,
    im2col_reference,
)
from gpugrad.kernels.pool import (
    max_pool2d_backward,
    max_pool2d_backward_reference,
    max_pool2d_forward,
    max_pool2d_reference,
    pool_output_size,
)
from gpugrad.kernels.loss import (
    check_targets,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_backward_reference,
    softmax_cross_entropy_forward,
    softmax_cross_entropy_forward_reference,
)

__all__ = [
    "CONV_ALGORITHMS",
    "CUDA_LAUNCHERS",
    "LAYOUTS",
    "check_targets",
    "col2im",
    "col2im_reference",
    "conv_algorithm",
    "conv_algorithm_mode",
    "conv_output_size",
    "cuda_launcher",
    "cuda_launcher_mode",
    "im2col",
    "im2col_reference",
    "max_pool2d_backward",
    "max_pool2d_backward_reference",
    "max_pool2d_forward",
    "max_pool2d_reference",
    "pool_output_size",
    "reference_enabled",
    "reference_mode",
    "relu_backward",
    "relu_backward_reference",
    "relu_forward",
    "relu_reference",
    "softmax_cross_entropy_backward",
    "softmax_cross_entropy_backward_reference",
    "softmax_cross_entropy_forward",
    "softmax_cross_entropy_forward_reference",
    "use_conv_algorithm",
    "use_cuda_launcher",
    "use_reference",
]
