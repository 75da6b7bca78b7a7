"""Refuse sizes the machine cannot hold, before anything is allocated at them.

``--image_size``, ``--eval_resolutions`` and ``--train_resolutions`` multiply the memory of the data
rendered at that size and of every activation of the model. Each check here compares a lower bound
of what a size needs with the memory available at that moment, and refuses the size with a
:class:`~ccnn_hf.data.errors.UserError` naming both amounts. The bounds count only tensors that
must exist at once (float32, 4 bytes a value), so a refused size would certainly have failed; a
size that passes can still be too large for what the bounds leave out (kernels, FFT buffers).

* data: every sample of a split rendered at that size, ``count x channels x values``, twice: the
  resized values and their normalised copy exist at once;
* a forward in evaluation: the input batch and one activation of ``hidden`` channels beside it;
* a training step: the input batch and, kept by autograd for the backward, the input of the stem
  conv and of every block's conv and linear layer, plus the activation being computed.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .errors import UserError

__all__ = ["FLOAT_BYTES", "render_bytes", "forward_bytes", "available_memory", "check_fits", "format_bytes"]

FLOAT_BYTES = 4


def render_bytes(count: int, channels: int, shape: Sequence[int]) -> int:
    """Bytes that rendering ``count`` float32 samples of ``channels`` x ``shape`` holds at once at
    least (resized, and normalised into a new tensor)."""
    return 2 * FLOAT_BYTES * count * channels * math.prod(shape)


def forward_bytes(channels: int, hidden: int, blocks: int, batch: int, shape: Sequence[int], training: bool) -> int:
    """A lower bound of the memory a CCNN forward (with ``training``, and its backward) needs on a
    batch of ``batch`` inputs of ``channels`` x ``shape``: see the module docstring."""
    activations = 2 + 2 * blocks if training else 1
    return FLOAT_BYTES * batch * math.prod(shape) * (channels + hidden * activations)


def available_memory(device: torch.device | None = None) -> int:
    """Bytes free now on ``device``: the GPU's free memory for CUDA, else the host's available memory."""
    if device is not None and device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    import psutil

    return int(psutil.virtual_memory().available)


def check_fits(what: str, need: int, device: torch.device | None = None) -> None:
    """Raise a UserError when ``what`` needs more than the memory ``device`` (default: the host) has free."""
    have = available_memory(device)
    if need > have:
        where = f"{device.type.upper()} memory" if device is not None and device.type == "cuda" else "memory"
        raise UserError(
            f"{what} would take at least {format_bytes(need)}, more than the {format_bytes(have)} of {where} "
            "available; choose a smaller size"
        )


def format_bytes(count: int) -> str:
    """``57.6 TB``, ``40 GB``, ``512 MB``: decimal units, three significant digits."""
    for unit, scale in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count} bytes"
