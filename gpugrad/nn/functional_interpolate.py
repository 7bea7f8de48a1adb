"""`interpolate`, as `torch.nn.functional.interpolate`: nearest, nearest-exact and (bi)linear
resampling of (N, C, W) and (N, C, H, W) input.

Nearest modes follow PyTorch's `nearest_idx` / `nearest_exact_idx` (float32 scale for every
dtype; 'nearest' copies when out == in and takes i // 2 when out == 2 * in, whatever the scale
factor), which PyTorch's CPU forward uses for small outputs and its backward always. For some
large outputs (seen from an output width of about 128, with a scale factor that is not
exactly in / out) PyTorch's CPU forward takes another path (scale in the input's precision, no
shortcuts) and picks a neighbouring source for a few positions, so it disagrees with its own
backward; gpugrad's forward and gradient stay consistent with that backward.

The source positions and weights depend on the sizes alone, so they are computed on the host
with NumPy, reproducing PyTorch's CPU kernels to the rounding (the scale and the source
coordinate in the opmath type, float32 for float32/float16 input and float64 for float64, and
the floor taken in float32 as `floorf` does), then sent to the input's device as gpugrad
tensors. The resampling itself is gpugrad ops: an integer-index gather per spatial dim (one
gather for both dims in the nearest modes) and, for (bi)linear, a weighted sum of the two
neighbours along each dim. So autograd gives the gradient (a scatter-add where sources repeat)
and every higher order, on any device.

How PyTorch picks the scale along a dim of input size `in` and output size `out`:
- align_corners=True ((bi)linear only): (in - 1) / (out - 1), 0 for out == 1;
- else a scale_factor `s` given (and recompute_scale_factor None or False): 1 / s, even where
  out = floor(in * s) makes in / out differ from it;
- else (size given, or recompute_scale_factor=True): in / out.
"""

from __future__ import annotations

import numbers

import numpy as np

from gpugrad import backend, factory
from gpugrad.nn._checks import _check_tensor
from gpugrad.ops.common import is_int
from gpugrad.tensor import Tensor

_OP = "interpolate"
_IMPLEMENTED = {3: ("nearest", "nearest-exact", "linear"), 4: ("nearest", "nearest-exact",
                                                                 "bilinear")}
_LINEAR_FOR_DIM = {"linear": 3, "bilinear": 4, "trilinear": 5}
_NOT_IMPLEMENTED = ("bicubic", "area", "trilinear", "lanczos")


# ----------------------------------------------------------------------------- source indices


def _scale(in_size: int, out_size: int, align_corners: bool, scale, dt):
    """PyTorch's area_pixel_compute_scale in the opmath dtype `dt`."""
    if align_corners:
        return dt(in_size - 1) / dt(out_size - 1) if out_size > 1 else dt(0)
    if scale is not None and scale > 0:
        return dt(1.0 / scale)
    return dt(in_size) / dt(out_size)


def _floorf(v) -> np.ndarray:
    """C's floorf of a float or double: rounded to float32 first, then floored."""
    return np.floor(np.asarray(v, dtype=np.float64).astype(np.float32)).astype(np.int64)


def _nearest_indices(in_size, out_size, scale, exact: bool) -> np.ndarray:
    if not exact and in_size == out_size:  # PyTorch copies, whatever the scale
        return np.arange(out_size, dtype=np.int64)
    if not exact and out_size == 2 * in_size:  # and doubles each, whatever the scale
        return np.arange(out_size, dtype=np.int64) // 2
    # PyTorch's nearest_idx / nearest_exact_idx: the scale in float32 whatever the dtype.
    s = np.float64(_scale(in_size, out_size, False, scale, np.float32))
    i = np.arange(out_size, dtype=np.float64)
    idx = _floorf((i + 0.5) * s if exact else i * s)
    return np.minimum(idx, in_size - 1)


def _linear_indices(in_size, out_size, align_corners, scale, dt):
    """(index0, index1, lambda0, lambda1) of each output position, lambdas in dtype `dt`."""
    if in_size == out_size:  # PyTorch copies, whatever the scale
        i = np.arange(out_size, dtype=np.int64)
        return i, i, np.ones(out_size, dt), np.zeros(out_size, dt)
    s = _scale(in_size, out_size, align_corners, scale, dt)
    i = np.arange(out_size, dtype=dt)
    if align_corners:
        src = s * i
    else:
        src = np.maximum(s * (i + dt(0.5)) - dt(0.5), dt(0))
    i0 = np.minimum(_floorf(src), in_size - 1)
    lambda1 = np.clip(src - i0.astype(dt), dt(0), dt(1)).astype(dt)
    i1 = i0 + (i0 < in_size - 1)
    return i0, i1, (dt(1) - lambda1).astype(dt), lambda1


# ----------------------------------------------------------------------------- arguments


def _describe(value) -> str:
    return f"{type(value).__name__} {value!r}"


def _output_sizes(input: Tensor, size, scale_factor, recompute_scale_factor):
    """(output sizes, scales passed to the kernel: a list with None entries or None)."""
    dim = input.ndim - 2
    spatial = list(input.shape[2:])
    if size is not None and scale_factor is not None:
        raise ValueError(f"{_OP}: only one of size or scale_factor should be defined, got "
                         f"size={size!r} and scale_factor={scale_factor!r}")
    if size is None and scale_factor is None:
        raise ValueError(f"{_OP}: either size or scale_factor should be defined")
    if recompute_scale_factor and size is not None:
        raise ValueError(f"{_OP}: recompute_scale_factor is not meaningful with an explicit "
                         f"size (got size={size!r})")
    if size is not None:
        if isinstance(size, (list, tuple)):
            if len(size) != dim:
                raise ValueError(
                    f"{_OP}: input and output must have the same number of spatial dimensions, "
                    f"but got input with spatial dimensions of {spatial} and output size of "
                    f"{size!r}")
            sizes = list(size)
        else:
            sizes = [size] * dim
        if not all(is_int(s) for s in sizes):
            raise TypeError(f"{_OP}: size must be an int or a tuple of {dim} ints, got "
                            f"{_describe(size)}")
        return [int(s) for s in sizes], None
    if isinstance(scale_factor, (list, tuple)):
        if len(scale_factor) != dim:
            raise ValueError(
                f"{_OP}: input and scale_factor must have the same number of spatial "
                f"dimensions, but got input with spatial dimensions of {spatial} and "
                f"scale_factor of shape {scale_factor!r}")
        factors = list(scale_factor)
    else:
        factors = [scale_factor] * dim
    for f in factors:
        if isinstance(f, (bool, np.bool_)) or not isinstance(f, numbers.Real):
            raise TypeError(f"{_OP}: scale_factor must be a float or a tuple of {dim} floats, "
                            f"got {_describe(scale_factor)}")
    factors = [float(f) for f in factors]
    if any(not np.isfinite(f) for f in factors):
        raise ValueError(f"{_OP}: scale_factor must be finite, got {scale_factor!r}")
    sizes = [int(n * f) for n, f in zip(spatial, factors)]  # truncated, as PyTorch
    return sizes, (None if recompute_scale_factor else factors)


def _check_sizes(input: Tensor, sizes) -> None:
    spatial = input.shape[2:]
    if min(spatial) > 0 and min(sizes) > 0:
        return
    names = ("H", "W")[-len(spatial):] if len(spatial) <= 2 else ()
    def show(values):
        return ", ".join(f"{n}: {v}" for n, v in zip(names, values))
    raise RuntimeError(f"{_OP}: input and output sizes should be greater than 0, but got input "
                       f"({show(spatial)}) output ({show(sizes)})")


def _check_mode(input: Tensor, mode, align_corners, antialias):
    if not isinstance(mode, str):
        raise TypeError(f"{_OP}: mode must be a string, got {_describe(mode)}")
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError(
                f"{_OP}: align_corners option can only be set with the interpolating modes: "
                f"linear | bilinear | bicubic | trilinear (got mode={mode!r}, "
                f"align_corners={align_corners!r})")
    elif align_corners is None:
        align_corners = False
    if input.ndim not in (3, 4):
        raise NotImplementedError(
            f"{_OP}: only 3-D (N, C, W) and 4-D (N, C, H, W) input is implemented in gpugrad, "
            f"got {input.ndim}-D input of shape {input.shape} (mode={mode!r})")
    if antialias and not (mode in ("bilinear", "bicubic", "lanczos") and input.ndim == 4):
        raise ValueError(f"{_OP}: the antialias option is restricted to bilinear, bicubic and "
                         f"lanczos modes and requires a 4-D input (got mode={mode!r} and "
                         f"{input.ndim}-D input)")
    if mode in _LINEAR_FOR_DIM and _LINEAR_FOR_DIM[mode] != input.ndim:
        raise NotImplementedError(f"{_OP}: got {input.ndim}D input, but {mode} mode needs "
                                  f"{_LINEAR_FOR_DIM[mode]}D input")
    if mode in _NOT_IMPLEMENTED:
        raise NotImplementedError(f"{_OP}: mode={mode!r} is not implemented in gpugrad "
                                  f"(implemented: nearest, nearest-exact, linear, bilinear)")
    if mode not in _IMPLEMENTED[input.ndim]:
        raise NotImplementedError(
            f"{_OP}: unknown mode {mode!r} for {input.ndim}-D input (expected one of "
            f"{', '.join(_IMPLEMENTED[input.ndim])})")
    if antialias:
        raise NotImplementedError(f"{_OP}: antialias=True is not implemented in gpugrad "
                                  f"(mode={mode!r})")
    if not isinstance(align_corners, (bool, np.bool_)) and align_corners is not None:
        raise TypeError(f"{_OP}: align_corners must be a bool or None, got "
                        f"{_describe(align_corners)}")
    return align_corners


# ----------------------------------------------------------------------------- the op


def _index(input: Tensor, array: np.ndarray) -> Tensor:
    return factory.tensor(array, dtype=backend.int64, device=input.device)


def _linear_along(x: Tensor, dim: int, in_size, out_size, align_corners, scale,
                  dt) -> Tensor:
    """(Bi)linear resampling of x along spatial dim `dim` (-1: W, -2: H)."""
    if in_size == out_size:  # PyTorch copies, whatever the scale
        return x
    i0, i1, l0, l1 = _linear_indices(in_size, out_size, align_corners, scale, dt)
    trail = (slice(None),) * (-1 - dim)
    wshape = (out_size,) + (1,) * (-1 - dim)
    x0 = x[(Ellipsis, _index(x, i0)) + trail]
    x1 = x[(Ellipsis, _index(x, i1)) + trail]
    w0 = factory.tensor(l0.reshape(wshape), dtype=x.dtype, device=x.device)
    w1 = factory.tensor(l1.reshape(wshape), dtype=x.dtype, device=x.device)
    return x0 * w0 + x1 * w1


def interpolate(input: Tensor, size=None, scale_factor=None, mode: str = "nearest",
                align_corners: bool | None = None, recompute_scale_factor: bool | None = None,
                antialias: bool = False) -> Tensor:
    """Resample (N, C, W) or (N, C, H, W) input to `size`, or by `scale_factor`, as PyTorch.

    Modes: 'nearest' (source floor(i * scale)), 'nearest-exact' (floor((i + 0.5) * scale)),
    'linear' (3-D) and 'bilinear' (4-D) with align_corners False (the default) or True.
    bicubic, area, trilinear and antialias=True raise NotImplementedError.
    """
    _check_tensor(_OP, "input", input)
    align_corners = _check_mode(input, mode, align_corners, antialias)
    sizes, scales = _output_sizes(input, size, scale_factor, recompute_scale_factor)
    _check_sizes(input, sizes)
    scales = scales if scales is not None else [None] * len(sizes)
    spatial = input.shape[2:]
    if mode in ("nearest", "nearest-exact"):
        idx = [_nearest_indices(n, m, s, mode == "nearest-exact")
               for n, m, s in zip(spatial, sizes, scales)]
        if len(idx) == 1:
            return input[..., _index(input, idx[0])]
        return input[..., _index(input, idx[0][:, None]), _index(input, idx[1][None, :])]
    if input.dtype.kind != "f":
        raise RuntimeError(f"{_OP}: mode={mode!r} expects a floating-point input, got "
                           f"{input.dtype}")
    if input.dtype == backend.float16:  # PyTorch computes half in float32 too
        return _bilinear(input.to(backend.float32), sizes, scales, align_corners).to(
            backend.float16)
    return _bilinear(input, sizes, scales, align_corners)


def _bilinear(input: Tensor, sizes, scales, align_corners) -> Tensor:
    dt = np.float64 if input.dtype == backend.float64 else np.float32
    y = input
    for k in range(len(sizes)):
        dim = k - len(sizes)  # -2 (H) then -1 (W), or -1 alone
        y = _linear_along(y, dim, input.shape[2 + k], sizes[k], align_corners, scales[k], dt)
    return y


__all__ = ["interpolate"]
