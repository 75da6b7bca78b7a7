"""Input and configuration checks with messages that name the problem."""
from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["check_input", "resolve_kernel_size"]

_AXES = {1: "[batch, channels, length]", 2: "[batch, channels, height, width]", 3: "[batch, channels, depth, height, width]"}


def check_input(x: torch.Tensor, data_dim: int, in_chans: int, check_finite: bool = False) -> None:
    """Raise a ValueError/TypeError describing what is wrong with a model input, if anything."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != data_dim + 2:
        raise ValueError(
            f"expected a {data_dim + 2}-D input {_AXES[data_dim]} for a model with data_dim={data_dim}, "
            f"got shape {tuple(x.shape)}"
            + (" (add a batch dimension with x.unsqueeze(0))" if x.ndim == data_dim + 1 else "")
        )
    if x.is_complex() or not x.is_floating_point():
        raise TypeError(f"expected a floating point input, got dtype {x.dtype} (convert with x.float())")
    if x.shape[1] != in_chans:
        raise ValueError(f"expected {in_chans} input channel(s), got {x.shape[1]} (input shape {tuple(x.shape)})")
    if x.shape[0] == 0 or any(n < 1 for n in x.shape[2:]):
        raise ValueError(f"input is empty: shape {tuple(x.shape)}")
    if check_finite and not torch.isfinite(x).all():
        raise ValueError("input contains NaN or infinite values")


def resolve_kernel_size(kernel_size: int | str | Sequence[int], base_resolution: Sequence[int], causal: bool) -> tuple[int, ...]:
    """Turn ``"same"`` / an int / a per-axis sequence into kernel taps per axis.

    ``"same"``: as long as the base input along each axis; centred kernels need an odd
    size, so an even length is rounded up by one.
    """
    data_dim = len(base_resolution)
    if isinstance(kernel_size, str):
        if kernel_size != "same":
            raise ValueError(f"kernel_size must be 'same', an int or one int per axis, got {kernel_size!r}")
        sizes = tuple(int(r) if causal or r % 2 else int(r) + 1 for r in base_resolution)
    elif isinstance(kernel_size, int):
        sizes = (kernel_size,) * data_dim
    else:
        sizes = tuple(int(k) for k in kernel_size)
    if len(sizes) != data_dim or min(sizes) < 1:
        raise ValueError(f"kernel_size must give {data_dim} positive sizes, got {kernel_size!r}")
    if not causal and any(k % 2 == 0 for k in sizes):
        raise ValueError(f"centred (non-causal) kernels need odd sizes, got {sizes}")
    return sizes
