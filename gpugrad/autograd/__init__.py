"""Autograd: the tape engine, grad modes, gradient checks and anomaly detection."""

from gpugrad.autograd.engine import backward, grad  # noqa: F401
from gpugrad.autograd.function import Function  # noqa: F401
from gpugrad.grad_mode import (  # noqa: F401
    enable_grad, is_grad_enabled, no_grad, set_grad_enabled,
)
from gpugrad.autograd.gradcheck import GradcheckError, gradcheck, gradgradcheck  # noqa: F401
from gpugrad.autograd.anomaly import AnomalyError, detect_anomaly  # noqa: F401,E402
