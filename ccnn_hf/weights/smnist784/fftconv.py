"""Depthwise N-D convolution with a per-channel kernel: direct and FFT paths, and a chooser.

All functions compute a cross-correlation (PyTorch's convention, no kernel flip) of
``x [B, C, *L]`` with ``kernel [C, *K]`` and return ``[B, C, *L]``:

* centred: output position ``t`` sees inputs ``t - K//2 .. t + K//2`` (odd ``K``);
* causal (1D only): output ``t`` sees ``t - K + 1 .. t``; the LAST tap weights the current
  sample, as in the official code.

The FFT path works in any dimension, pads to fast (5-smooth) lengths, needs only
``L + max(P, K - 1 - P)`` points per axis (the kernel is rolled instead of the input padded)
and always runs in float32, also under autocast. On CPU it transforms blocks of samples and
channels (:data:`CPU_BLOCK_BYTES`), so that no padded copy of the whole batch is ever held.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch.nn import functional as F

__all__ = [
    "fast_fft_length",
    "fft_sizes",
    "kernel_spectrum",
    "depthwise_conv_direct",
    "depthwise_conv_fft",
    "depthwise_conv_fft_official_1d",
    "choose_conv_path",
    "estimated_costs",
    "PATH_CROSSOVER",
    "crossover_for",
]


def fast_fft_length(n: int) -> int:
    """Smallest even 5-smooth integer (2^a 3^b 5^c, a >= 1) that is >= n (a few dozen integer
    steps; not memoised, so that torch.compile traces it without a cache wrapper)."""
    best = None
    p2 = 2
    while True:
        p23 = p2
        while True:
            candidate = p23
            while candidate < n:
                candidate *= 5
            best = candidate if best is None else min(best, candidate)
            if p23 >= n:
                break
            p23 *= 3
        if p2 >= n:
            return best
        p2 *= 2


def _left_padding(kernel_size: Sequence[int], causal: bool) -> list[int]:
    return [k - 1 for k in kernel_size] if causal else [k // 2 for k in kernel_size]


def _check_kernel(x: torch.Tensor, kernel: torch.Tensor, causal: bool) -> None:
    spatial = kernel.shape[1:]
    if causal and len(spatial) != 1:
        raise ValueError("causal convolution is only defined for 1D data")
    if not causal and any(k % 2 == 0 for k in spatial):
        raise ValueError(f"centred convolution needs odd kernel sizes, got {tuple(spatial)}")
    if kernel.shape[0] != x.shape[1]:
        raise ValueError(f"kernel has {kernel.shape[0]} channels, input has {x.shape[1]}")


def depthwise_conv_direct(
    x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None, causal: bool
) -> torch.Tensor:
    """Depthwise convolution through ``torch.nn.functional.conv{D}d`` with ``groups=C``."""
    _check_kernel(x, kernel, causal)
    data_dim = kernel.ndim - 1
    conv = (F.conv1d, F.conv2d, F.conv3d)[data_dim - 1]
    weight = kernel.unsqueeze(1).to(x.dtype)  # [C, 1, *K]
    bias = None if bias is None else bias.to(x.dtype)
    if causal:
        return conv(F.pad(x, [kernel.shape[-1] - 1, 0]), weight, bias, groups=x.shape[1])
    return conv(x, weight, bias, padding=[k // 2 for k in kernel.shape[1:]], groups=x.shape[1])


def fft_sizes(lengths: Sequence[int], kernel_size: Sequence[int], causal: bool) -> list[int]:
    """FFT length per axis: fast, and long enough that the circular correlation does not wrap."""
    pads = _left_padding(kernel_size, causal)
    return [fast_fft_length(n + max(p, k - 1 - p)) for n, k, p in zip(lengths, kernel_size, pads)]


def kernel_spectrum(kernel: torch.Tensor, sizes: Sequence[int], causal: bool) -> torch.Tensor:
    """``conj(rfftn(k))`` of the kernel placed so that tap j sits at offset j - P (mod N): the
    circular correlation then lines up with output position t. Reusable for every input of
    the same spatial size (the layer caches it in eval mode)."""
    data_dim = kernel.ndim - 1
    dims = tuple(range(-data_dim, 0))
    ksize = kernel.shape[1:]
    with torch.autocast(device_type=kernel.device.type, enabled=False):
        k = F.pad(kernel.float(), [q for n, kk in zip(reversed(sizes), reversed(ksize)) for q in (0, n - kk)])
        k = torch.roll(k, shifts=[-p for p in _left_padding(ksize, causal)], dims=dims)
        return torch.conj_physical(torch.fft.rfftn(k, dim=dims))


# Working set of the FFT path: (batch, channel) blocks ----------------------------------

# On CPU the FFT path transforms at most about this many bytes of padded complex spectrum at a
# time. Whole-tensor transforms of a 2D 128x128 batch hold several padded copies (40 MB each at
# 140 channels and batch 2) next to the activations kept for the backward, and the holes they
# leave behind fragment the heap; blocks of a few MB cost no speed on CPU. Other devices (and
# compiled graphs, whose compiler plans memory itself) transform the whole tensor at once.
CPU_BLOCK_BYTES = 4 << 20


def _blocks(x: torch.Tensor, sizes: Sequence[int]) -> list[tuple[slice, slice]]:
    """``(batch slice, channel slice)`` blocks covering ``x [B, C, *L]``, channel blocks outer
    (each kernel spectrum block is computed once), each block's padded spectrum within
    :data:`CPU_BLOCK_BYTES` where possible (at least one channel of one sample)."""
    batch, channels = x.shape[0], x.shape[1]
    if x.device.type != "cpu" or torch.compiler.is_compiling():
        return [(slice(0, batch), slice(0, channels))]
    per_channel = 8 * math.prod(sizes[:-1]) * (sizes[-1] // 2 + 1)  # complex64 half spectrum
    if channels * per_channel <= CPU_BLOCK_BYTES:
        step = max(CPU_BLOCK_BYTES // (channels * per_channel), 1)
        return [(slice(b, min(b + step, batch)), slice(0, channels)) for b in range(0, batch, step)]
    step = max(CPU_BLOCK_BYTES // per_channel, 1)
    return [
        (slice(b, b + 1), slice(c, min(c + step, channels))) for c in range(0, channels, step) for b in range(batch)
    ]


def _crop(t: torch.Tensor, lengths: Sequence[int]) -> torch.Tensor:
    """The leading ``lengths`` points of ``t``'s trailing axes."""
    return t[(..., *(slice(0, n) for n in lengths))]


def _correlate_into(
    out: torch.Tensor,
    x: torch.Tensor,
    kernel: torch.Tensor | None,
    spectrum: torch.Tensor | None,
    sizes: Sequence[int],
    causal: bool,
) -> torch.Tensor:
    """Write ``irfftn(rfftn(x, sizes) * S)``, cut back to ``x``'s size, into ``out`` (float32,
    shaped like ``x``) block by block, ``S`` being ``spectrum`` or the kernel's spectrum: the
    circular correlation that ``S`` describes, on zero-padded float32 data."""
    dims = tuple(range(-len(sizes), 0))
    cached = None
    for b, c in _blocks(x, sizes):
        if spectrum is None and (cached is None or cached[0] != c):  # (channel blocks are outer)
            cached = (c, kernel_spectrum(kernel[c], sizes, causal))
        block_spectrum = spectrum[c] if spectrum is not None else cached[1]
        product = torch.fft.rfftn(x[b, c].float(), s=sizes, dim=dims).mul_(block_spectrum)
        out[b, c] = _crop(torch.fft.irfftn(product, s=sizes, dim=dims), x.shape[2:])
    return out


# The FFT correlation is an opaque custom op with a hand-written backward, for two reasons.
# Memory: autograd through the FFTs would keep the batch's padded complex spectrum (about 4x the
# input's memory) per layer; the backward below keeps only the input and the kernel and recomputes
# both spectra block by block. Compilation: torch.compile sees two real-valued ops and never a
# complex tensor (Inductor's Triton backend cannot generate code for complex64 buffers on CUDA).
# Gradients, with ``G = rfftn(grad)`` and ``S`` the kernel spectrum: input ``irfftn(G conj(S))``;
# kernel taps ``roll(irfftn(sum_batch conj(G) rfftn(x)), P)[:K]``. Every conjugate is physical
# (``conj_physical``): when a compiled training graph runs these ops, a lazy conjugate's bit was
# ignored (torch 2.14, measured: another output with no error), which tests/test_continuous.py catches.


@torch.library.custom_op("ccnn_hf::fft_correlate", mutates_args=())
def _fft_correlate(x: torch.Tensor, kernel: torch.Tensor, sizes: list[int], causal: bool) -> torch.Tensor:
    """Depthwise correlation of ``x`` with ``kernel`` (float32) through FFTs of ``sizes``."""
    return _correlate_into(torch.empty(x.shape, dtype=torch.float32, device=x.device), x, kernel, None, sizes, causal)


@_fft_correlate.register_fake
def _(x: torch.Tensor, kernel: torch.Tensor, sizes: list[int], causal: bool) -> torch.Tensor:
    return x.new_empty(x.shape, dtype=torch.float32)


@torch.library.custom_op("ccnn_hf::fft_correlate_backward", mutates_args=())
def _fft_correlate_backward(
    grad: torch.Tensor,
    x: torch.Tensor,
    kernel: torch.Tensor,
    sizes: list[int],
    causal: bool,
    need_x: bool,
    need_kernel: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of :func:`_fft_correlate` for ``x`` and ``kernel`` (an empty tensor for one not needed)."""
    dims = tuple(range(-len(sizes), 0))
    grad_x = torch.empty(x.shape, dtype=torch.float32, device=x.device) if need_x else None
    grad_kernel = torch.zeros(kernel.shape, dtype=torch.float32, device=kernel.device) if need_kernel else None
    cached = None
    blocks = _blocks(x, sizes)
    for i, (b, c) in enumerate(blocks):
        if cached is None or cached[0] != c:
            cached = (c, kernel_spectrum(kernel[c], sizes, causal), None)
        c, spectrum, cross = cached
        grad_spectrum = torch.fft.rfftn(grad[b, c].float(), s=sizes, dim=dims)
        if need_kernel:
            term = torch.fft.rfftn(x[b, c].float(), s=sizes, dim=dims).mul_(grad_spectrum.conj_physical()).sum(0)
            cross = term if cross is None else cross.add_(term)
            cached = (c, spectrum, cross)
        if need_x:
            grad_spectrum.mul_(spectrum.conj_physical())
            grad_x[b, c] = _crop(torch.fft.irfftn(grad_spectrum, s=sizes, dim=dims), x.shape[2:])
        if need_kernel and (i + 1 == len(blocks) or blocks[i + 1][1] != c):  # last block of these channels
            lags = torch.roll(
                torch.fft.irfftn(cross, s=sizes, dim=dims),
                shifts=_left_padding(kernel.shape[1:], causal),
                dims=dims,
            )
            # Taps beyond the FFT length never meet an input sample (kernel_spectrum drops them).
            lags = _crop(lags, kernel.shape[1:])
            grad_kernel[(c, *(slice(0, n) for n in lags.shape[1:]))] = lags
    return (
        x.new_empty(0) if grad_x is None else grad_x.to(x.dtype),
        kernel.new_empty(0) if grad_kernel is None else grad_kernel.to(kernel.dtype),
    )


@_fft_correlate_backward.register_fake
def _(grad, x, kernel, sizes, causal, need_x, need_kernel) -> tuple[torch.Tensor, torch.Tensor]:
    return (x.new_empty(x.shape if need_x else 0), kernel.new_empty(kernel.shape if need_kernel else 0))


def _fft_correlate_setup(ctx, inputs, output) -> None:
    x, kernel, sizes, causal = inputs
    ctx.sizes, ctx.causal = sizes, causal
    ctx.save_for_backward(x, kernel)


def _fft_correlate_grad(ctx, grad: torch.Tensor):
    x, kernel = ctx.saved_tensors
    need_x, need_kernel = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    grad_x, grad_kernel = _fft_correlate_backward(grad, x, kernel, ctx.sizes, ctx.causal, need_x, need_kernel)
    return (grad_x if need_x else None, grad_kernel if need_kernel else None, None, None)


_fft_correlate.register_autograd(_fft_correlate_grad, setup_context=_fft_correlate_setup)


def depthwise_conv_fft(
    x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None, causal: bool, spectrum: torch.Tensor | None = None
) -> torch.Tensor:
    """Depthwise convolution through real N-D FFTs of fast lengths, in float32.

    ``spectrum``: the kernel's :func:`kernel_spectrum` for this input size, if already known.
    When gradients are needed the backward recomputes the spectra instead of keeping them. On
    CPU the transforms run in blocks of batch elements and channels (:data:`CPU_BLOCK_BYTES`).
    """
    _check_kernel(x, kernel, causal)
    data_dim = kernel.ndim - 1
    sizes = tuple(fft_sizes(x.shape[2:], kernel.shape[1:], causal))
    with torch.autocast(device_type=x.device.type, enabled=False):
        if spectrum is None:
            out = _fft_correlate(x, kernel.float(), list(sizes), causal)
        else:
            out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
            _correlate_into(out, x, kernel, spectrum, sizes, causal)
        if bias is not None:  # in place: the correlation's output is not needed by any backward
            out = out.add_(bias.float().view(1, -1, *(1,) * data_dim))
    return out if x.dtype == torch.float32 or torch.is_autocast_enabled(x.device.type) else out.to(x.dtype)


def depthwise_conv_fft_official_1d(
    x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None, causal: bool
) -> torch.Tensor:
    """The official 1D FFT convolution, op for op, including its odd-length ``irfft`` bug.

    ``irfft`` is called without ``n``: when the padded length is odd the inverse is one
    sample short and the result is not a convolution (``legacy_odd_fft=True`` only).
    """
    if kernel.ndim != 2:
        raise ValueError("the official FFT convolution is 1D only")
    length = x.shape[-1]
    with torch.autocast(device_type=x.device.type, enabled=False):
        x, k = x.float(), kernel.float().unsqueeze(0)  # [1, C, K]
        if causal:
            if k.shape[-1] % 2 == 0:
                k = F.pad(k, [1, 0])
            x = F.pad(x, [k.shape[-1] - 1, 0])
        else:
            x = F.pad(x, [k.shape[-1] // 2, k.shape[-1] // 2])
        k = F.pad(k, [0, x.shape[-1] - k.shape[-1]])
        out = torch.fft.irfft(torch.conj(torch.fft.rfft(k, dim=-1)) * torch.fft.rfft(x, dim=-1), dim=-1)[..., :length]
        if bias is not None:
            out = out + bias.float().view(1, -1, 1)
    return out


# Choice between the two paths: a fixed cost model ------------------------------------

# FFT wins when ``direct_cost > crossover * fft_cost`` (:func:`estimated_costs`), per (training,
# spatial axes). Each value is the crossover that lost the least time summed over a grid of 1D and
# 2D shapes, batches and kernel sizes, as benchmarks/calibrate_conv_path.py measures it (its results
# and conditions: benchmarks/results/conv_path_calibration*.json and benchmarks/README.md), rounded;
# training's is lower in 1D, where the direct path's depthwise backward is slow on the CPU. 3D uses 2D's.
PATH_CROSSOVER = {(False, 1): 0.45, (False, 2): 1.3, (True, 1): 0.15, (True, 2): 1.0}


def crossover_for(training: bool, data_dim: int) -> float:
    """The calibrated crossover of :data:`PATH_CROSSOVER` for a pass and a number of spatial axes."""
    return PATH_CROSSOVER[bool(training), min(data_dim, 2)]


def estimated_costs(x_shape: Sequence[int], kernel_shape: Sequence[int], causal: bool) -> tuple[float, float]:
    """Operation counts ``(direct, fft)`` of one depthwise convolution of ``x_shape`` with ``kernel_shape``:
    multiply-adds of the direct path; ``2.5 N log2 N`` per real FFT of ``N`` points (input, kernel
    and inverse) plus the complex products for the FFT path."""
    batch, channels, lengths, ksize = x_shape[0], x_shape[1], x_shape[2:], kernel_shape[1:]
    direct = batch * channels * math.prod(lengths) * math.prod(ksize)
    points = math.prod(fft_sizes(lengths, ksize, causal))
    fft = (2 * batch + 1) * channels * points * max(math.log2(points), 1.0) * 2.5 + batch * channels * points * 3
    return direct, fft


def choose_conv_path(x_shape: Sequence[int], kernel_shape: Sequence[int], causal: bool, training: bool = False) -> str:
    """``"fft"`` or ``"direct"`` for a convolution of ``x_shape`` with ``kernel_shape``, from the
    cost model alone: a pure function of the shapes, so runs with the same seed take the same
    paths (and give the same weights) whatever the machine's load."""
    direct, fft = estimated_costs(x_shape, kernel_shape, causal)
    return "fft" if direct > crossover_for(training, len(x_shape) - 2) * fft else "direct"
