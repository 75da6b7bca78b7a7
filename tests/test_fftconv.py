"""The FFT path computes the same convolution as the direct path in every dimension."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ccnn_hf import fftconv
from ccnn_hf.fftconv import (
    choose_conv_path,
    depthwise_conv_direct,
    depthwise_conv_fft,
    depthwise_conv_fft_official_1d,
    fast_fft_length,
    fft_sizes,
)


def _smooth(n: int) -> bool:
    for p in (2, 3, 5):
        while n % p == 0:
            n //= p
    return n == 1


@pytest.mark.parametrize("n", [1, 2, 7, 33, 97, 784 + 64, 17704, 16384 + 1319])
def test_fast_fft_length_is_the_next_even_5_smooth_size(n):
    m = fast_fft_length(n)
    assert m >= n and m % 2 == 0 and _smooth(m)
    assert not any(k % 2 == 0 and _smooth(k) for k in range(n, m))


CASES = [
    ((2, 3, 50), (3, 17), True),
    ((2, 3, 50), (3, 16), True),  # even causal kernel
    ((2, 3, 40), (3, 61), True),  # kernel longer than the input
    ((1, 2, 31), (2, 9), False),
    ((2, 3, 12, 17), (3, 5, 9), False),
    ((1, 2, 9, 10), (2, 33, 33), False),  # kernel much larger than the image
    ((1, 2, 6, 7, 5), (2, 3, 5, 7), False),
]


@pytest.mark.parametrize("x_shape, k_shape, causal", CASES)
def test_fft_matches_direct(x_shape, k_shape, causal):
    g = torch.Generator().manual_seed(0)
    x, k, b = torch.randn(x_shape, generator=g), torch.randn(k_shape, generator=g), torch.randn(k_shape[0], generator=g)
    direct = depthwise_conv_direct(x, k, b, causal)
    fft = depthwise_conv_fft(x, k, b, causal)
    assert fft.shape == direct.shape == x.shape
    torch.testing.assert_close(fft, direct, rtol=1e-4, atol=1e-4 * direct.abs().max().item())


@pytest.mark.parametrize("x_shape, k_shape, causal", CASES)
def test_fft_gradients_match_direct(x_shape, k_shape, causal):
    """The FFT path's hand-written backward (input, kernel taps, bias) against autograd of the
    direct path in float64, including kernels longer than the FFT."""
    g = torch.Generator().manual_seed(1)
    x, k, b = (torch.randn(s, generator=g, dtype=torch.float64) for s in (x_shape, k_shape, k_shape[:1]))
    upstream = torch.randn(x_shape, generator=g, dtype=torch.float64)
    leaves = [t.clone().requires_grad_() for t in (x, k, b)]
    expected = torch.autograd.grad((depthwise_conv_direct(*leaves, causal) * upstream).sum(), leaves)
    leaves = [t.float().requires_grad_() for t in (x, k, b)]
    got = torch.autograd.grad((depthwise_conv_fft(*leaves, causal) * upstream.float()).sum(), leaves)
    for name, a, e in zip(("input", "kernel", "bias"), got, expected):
        assert a.shape == e.shape, name
        torch.testing.assert_close(a.double(), e, rtol=1e-4, atol=1e-5 * e.abs().max().item(), msg=name)


def _fft_outputs_and_grads(x, k, b, causal, upstream):
    leaves = [t.clone().requires_grad_() for t in (x, k, b)]
    out = depthwise_conv_fft(*leaves, causal)
    return [out.detach(), *torch.autograd.grad((out * upstream).sum(), leaves)]


@pytest.mark.parametrize("x_shape, k_shape, causal", CASES)
@pytest.mark.parametrize("channels_per_block", [1, 2])
def test_blocked_fft_matches_whole_tensor_transforms(monkeypatch, x_shape, k_shape, causal, channels_per_block):
    """Blocks of one channel of one sample, or of two channels (two samples where a sample has
    fewer), give the output and the gradients of a single whole-tensor transform."""
    g = torch.Generator().manual_seed(2)
    x, k, b, upstream = (torch.randn(s, generator=g) for s in (x_shape, k_shape, k_shape[:1], x_shape))
    whole = _fft_outputs_and_grads(x, k, b, causal, upstream)
    sizes = fft_sizes(x_shape[2:], k_shape[1:], causal)
    per_channel = 8 * math.prod(sizes[:-1]) * (sizes[-1] // 2 + 1)
    monkeypatch.setattr(fftconv, "CPU_BLOCK_BYTES", channels_per_block * per_channel)
    blocks = fftconv._blocks(x, sizes)
    assert len(blocks) == (x_shape[0] * x_shape[1] if channels_per_block == 1 else len(blocks)) > 0
    for name, got, expected in zip(
        ("output", "input", "kernel", "bias"), _fft_outputs_and_grads(x, k, b, causal, upstream), whole
    ):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item(), msg=name)


@pytest.mark.parametrize(
    "shape, per_channel_blocks, expected",
    [
        ((3, 4), 1, [(slice(b, b + 1), slice(c, c + 1)) for c in range(4) for b in range(3)]),
        ((3, 4), 3, [(slice(b, b + 1), slice(c, min(c + 3, 4))) for c in (0, 3) for b in range(3)]),
        ((3, 4), 8, [(slice(0, 2), slice(0, 4)), (slice(2, 3), slice(0, 4))]),
        ((3, 4), 100, [(slice(0, 3), slice(0, 4))]),
    ],
)
def test_blocks_cover_every_sample_and_channel_once_channel_blocks_outer(
    monkeypatch, shape, per_channel_blocks, expected
):
    sizes = (6, 10)  # 6 x 6 complex half-spectrum points: 288 bytes per channel
    monkeypatch.setattr(fftconv, "CPU_BLOCK_BYTES", 288 * per_channel_blocks)
    assert fftconv._blocks(torch.zeros(*shape, 5, 5), sizes) == expected


def test_fft_backward_keeps_only_the_input_and_the_kernel():
    """What the FFT path saves for its backward is the input and the float32 kernel themselves:
    no padded copies, no spectra (which would be about 4x the input per layer)."""
    x = torch.randn(2, 3, 20, 24, requires_grad=True)
    k = torch.randn(3, 9, 7, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        depthwise_conv_fft(x, k, torch.zeros(3, requires_grad=True), causal=False)
    assert len(saved) == 2
    assert saved[0].data_ptr() == x.data_ptr() and saved[0].shape == x.shape
    assert saved[1].data_ptr() == k.data_ptr() and saved[1].shape == k.shape


def test_fft_transforms_never_hold_a_whole_padded_spectrum(monkeypatch):
    """With blocks, no operation of the forward or the backward makes a tensor larger than the
    input (the output and the input's gradient are input-sized), whereas one transform of the
    whole zero-padded input is 1.8x its size here."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class LargestOutput(TorchDispatchMode):
        largest = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor):
                    LargestOutput.largest = max(LargestOutput.largest, t.numel() * t.element_size())
            return out

    x = torch.randn(2, 8, 48, 48, requires_grad=True)
    k = torch.randn(8, 33, 33, requires_grad=True)
    sizes = fft_sizes(x.shape[2:], k.shape[1:], causal=False)
    whole_spectrum = 2 * 8 * sizes[0] * (sizes[1] // 2 + 1) * 8
    assert whole_spectrum > 1.5 * x.numel() * 4
    monkeypatch.setattr(fftconv, "CPU_BLOCK_BYTES", 64 * 1024)
    with LargestOutput():
        depthwise_conv_fft(x, k, None, causal=False).square().sum().backward()
    assert LargestOutput.largest == x.numel() * 4


def test_direct_path_is_a_plain_correlation():
    """Centred: output t sees t-K//2..t+K//2; causal: the last tap weights the current sample."""
    x = torch.zeros(1, 1, 9)
    x[0, 0, 4] = 1.0
    k = torch.arange(1.0, 4.0).view(1, 3)
    centred = depthwise_conv_direct(x, k, None, causal=False)[0, 0]
    assert centred[3:6].tolist() == [3.0, 2.0, 1.0]
    causal = depthwise_conv_direct(x, k, None, causal=True)[0, 0]
    assert causal[4:7].tolist() == [3.0, 2.0, 1.0] and causal[:4].abs().sum() == 0


@settings(max_examples=25, deadline=None)
@given(
    data_dim=st.integers(1, 3),
    length=st.integers(1, 12),
    ksize=st.integers(0, 4),
    causal=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_fft_equals_direct_property(data_dim, length, ksize, causal, seed):
    causal = causal and data_dim == 1
    k = 2 * ksize + 1 if not causal else ksize + 1
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 2, *(length,) * data_dim, generator=g, dtype=torch.float64)
    kernel = torch.randn(2, *(k,) * data_dim, generator=g, dtype=torch.float64)
    torch.testing.assert_close(
        depthwise_conv_fft(x, kernel, None, causal).double(),
        depthwise_conv_direct(x, kernel, None, causal),
        rtol=1e-4,
        atol=1e-4,
    )


def test_fft_runs_in_float32_under_autocast():
    x = torch.randn(2, 3, 64)
    k = torch.randn(3, 65)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = depthwise_conv_fft(x.bfloat16(), k, None, causal=True)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, depthwise_conv_direct(x.bfloat16().float(), k, None, True), rtol=1e-4, atol=1e-3)


def test_official_fft_is_exact_for_even_lengths_and_broken_for_odd_ones():
    g = torch.Generator().manual_seed(1)
    k = torch.randn(2, 101, generator=g)
    even = torch.randn(1, 2, 300, generator=g)
    torch.testing.assert_close(
        depthwise_conv_fft_official_1d(even, k, None, True),
        depthwise_conv_direct(even, k, None, True),
        rtol=1e-4,
        atol=1e-4,
    )
    odd = torch.randn(1, 2, 301, generator=g)
    good = depthwise_conv_direct(odd, k, None, True)
    assert (depthwise_conv_fft_official_1d(odd, k, None, True) - good).norm() > 0.3 * good.norm()


@pytest.mark.parametrize("training", [False, True])
def test_path_choice_follows_cost(training):
    assert choose_conv_path((2, 8, 4096), (8, 4001), causal=True, training=training) == "fft"
    assert choose_conv_path((2, 8, 4096), (8, 3), causal=True, training=training) == "direct"
    assert choose_conv_path((2, 8, 128, 128), (8, 65, 65), causal=False, training=training) == "fft"
    assert choose_conv_path((64, 140, 14, 14), (140, 3, 3), causal=False, training=training) == "direct"


def test_path_choice_is_a_pure_function_of_the_shapes(monkeypatch):
    """No timing, no randomness: the RNG stream and the clock are never touched."""
    import time

    monkeypatch.setattr(time, "perf_counter", lambda: pytest.fail("the path choice must not time anything"))
    state = torch.get_rng_state()
    shapes = [((b, 140, n), (140, k), True) for b in (1, 64) for n in (196, 784) for k in (9, 65, n)]
    shapes += [((b, 140, n, n), (140, k, k), False) for b in (1, 64) for n in (14, 32) for k in (3, 9, 33)]
    first = [choose_conv_path(*s, training=t) for s in shapes for t in (False, True)]
    assert [choose_conv_path(*s, training=t) for s in shapes for t in (False, True)] == first
    assert torch.equal(torch.get_rng_state(), state)


def test_bad_kernels_are_refused():
    with pytest.raises(ValueError, match="odd"):
        depthwise_conv_direct(torch.zeros(1, 2, 9), torch.zeros(2, 4), None, causal=False)
    with pytest.raises(ValueError, match="1D"):
        depthwise_conv_fft(torch.zeros(1, 2, 9, 9), torch.zeros(2, 3, 3), None, causal=True)
    with pytest.raises(ValueError, match="channels"):
        depthwise_conv_fft(torch.zeros(1, 2, 9), torch.zeros(3, 3), None, causal=False)
    n = fast_fft_length(10**6 + 1)  # large and odd: found quickly, even, 5-smooth, not much longer
    rest = n
    for prime in (2, 3, 5):
        while rest % prime == 0:
            rest //= prime
    assert rest == 1 and n % 2 == 0 and 10**6 + 1 <= n <= 1.1 * (10**6 + 1)
