"""Official weights reproduce the official logits (fixtures made with github.com/david-knigge/ccnn)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from ccnn_hf import build_ccnn, load_original_state_dict
from helpers import require_shared

FIXTURES = {
    "smnist_ccnn_4_140": ("smnist_4_140", 1e-3),
    "smnist_ccnn_4_140_perturbed": ("smnist_4_140", 1e-3),
    "cifar10_ccnn_4_140": ("cifar10_4_140", 2e-4),
    "cifar10_ccnn_4_140_perturbed": ("cifar10_4_140", 2e-4),
}
# Masked kernels, relative to their peak. MAGNet's sine arguments W x + b reach |omega_0 x| ~ 3e3
# for sMNIST (omega_0 = 2976), where float32's spacing is 2.4e-4 rad. With zero filter biases
# (the unperturbed fixtures) W x + b is rounded the same by every BLAS kernel and the kernels agree
# to 1e-6; with the perturbed fixture's non-zero biases the rounding depends on whether the CPU's
# GEMM fuses the bias, and the four multiplied filters agree to ~1.6e-3 of the peak on an Intel
# Xeon (exactly on the machine that made the fixture). The logits still agree to 1e-3.
KERNEL_TOLERANCE = {"smnist_ccnn_4_140_perturbed": 3e-3}
DEBUG_NAMES = {"conv1": "stem.conv", **{f"blocks.{i}.conv1": f"blocks.{i}.conv" for i in range(4)}}


def _load(folder: str) -> tuple[dict, dict]:
    root = require_shared("fixtures", "reference", folder)
    return load_file(root / "model.safetensors"), load_file(root / "io.safetensors")


def _io_pairs(io: dict) -> list[tuple[str, str]]:
    pairs = [("input", "logits")]
    pairs += [
        (k.replace("logits", "input"), k) for k in io if k.startswith("logits_") and k.replace("logits", "input") in io
    ]
    return pairs


@pytest.fixture(scope="module", params=sorted(FIXTURES))
def converted(request):
    state, io = _load(request.param)
    preset, tol = FIXTURES[request.param]
    model = load_original_state_dict(build_ccnn(preset, mode="reference"), state).eval()
    model.fixture = request.param
    return model, state, io, tol


def _max_rel(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out - ref.view_as(out)).abs().max() / ref.abs().max()).item()


def test_every_recorded_logit_is_reproduced(converted):
    model, _, io, tol = converted
    pairs = _io_pairs(io)
    assert len(pairs) >= 2  # 784 + 1024 for 1D; 32x32 + 64x64 + upsampled for 2D
    with torch.no_grad():
        for inp, ref in pairs:
            out = model(io[inp])
            assert out.shape == (io[inp].shape[0], 10)
            assert _max_rel(out, io[ref]) <= tol, (inp, _max_rel(out, io[ref]))


def test_masked_kernels_match_layer_by_layer(converted):
    model, _, io, _ = converted
    for key, ref in io.items():
        if key.startswith("debug.masked_kernel."):
            kernel = model.get_submodule(DEBUG_NAMES[key.removeprefix("debug.masked_kernel.")]).kernel()
            assert kernel.shape == ref.shape[1:]
            tol = KERNEL_TOLERANCE.get(model.fixture, 1e-6)
            torch.testing.assert_close(kernel, ref[0], rtol=0, atol=tol * ref.abs().max().item())


def test_lightning_prefix_and_pre_2025_checkpoints_load_identically(converted):
    model, state, io, tol = converted
    preset = "smnist_4_140" if model.data_dim == 1 else "cifar10_4_140"
    # Lightning .ckpt layout, and checkpoints written before May 2025 (no `initialized` buffers):
    # their weights are already re-scaled and must not be re-scaled again.
    lightning = {f"network.{k}": v for k, v in state.items() if not k.endswith(".initialized")}
    other = load_original_state_dict(build_ccnn(preset, mode="reference"), lightning).eval()
    with torch.no_grad():
        assert _max_rel(other(io["input"]), io["logits"]) <= tol


def test_checkpoint_saved_before_first_forward_is_rescaled_once():
    state, io = _load("smnist_ccnn_4_140")
    # Undo the first-forward re-weighting: what the official code saves before any forward.
    fresh = dict(state)
    for key in [k for k in state if k.endswith("Kernel.output_linear.weight")]:
        fresh[key] = state[key] * (65**0.5)  # every smnist_4_140 conv starts with 65 taps
    for key in [k for k in state if k.endswith(".initialized")]:
        fresh[key] = torch.zeros_like(state[key])
    for key in [k for k in state if k.endswith(".train_length")]:
        fresh[key] = torch.zeros_like(state[key])
    model = load_original_state_dict(build_ccnn("smnist_4_140", mode="reference"), fresh).eval()
    with torch.no_grad():
        assert _max_rel(model(io["input"]), io["logits"]) <= 1e-3


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda s: s.pop("blocks.0.linear1.bias"), "missing key 'blocks.0.linear.bias'"),
        (lambda s: s.__setitem__("extra.weight", torch.zeros(1)), "unexpected key 'extra.weight'"),
        (
            lambda s: s.__setitem__("blocks.0.conv1.train_length", torch.tensor([1024], dtype=torch.int32)),
            "blocks.0.conv1.train_length",
        ),
        (lambda s: s.__setitem__("conv1.mask_mean_param", torch.tensor([0.0])), "conv1.mask_mean_param"),
        (lambda s: s.__setitem__("out_layer.weight", torch.zeros(3, 140, 1)), "shape mismatch for 'head.fc.weight'"),
    ],
)
def test_mismatched_state_dicts_are_refused_naming_the_keys(mutate, message):
    state, _ = _load("smnist_ccnn_4_140")
    state = dict(state)
    mutate(state)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_original_state_dict(build_ccnn("smnist_4_140", mode="reference"), state)


def test_official_weights_need_reference_mode():
    state, _ = _load("smnist_ccnn_4_140")
    with pytest.raises(ValueError, match="reference mode"):
        load_original_state_dict(build_ccnn("smnist_4_140"), state)


def test_legacy_odd_fft_reproduces_the_official_bug_only_when_asked():
    state, io = _load("smnist_ccnn_4_140_perturbed")
    x = io["input"][..., :783]  # odd padded FFT length: the official irfft drops a sample
    fixed = load_original_state_dict(build_ccnn("smnist_4_140", mode="reference"), state).eval()
    legacy = load_original_state_dict(build_ccnn("smnist_4_140", mode="reference", legacy_odd_fft=True), state).eval()
    direct = load_original_state_dict(build_ccnn("smnist_4_140", mode="reference", use_fft=False), state).eval()
    with torch.no_grad():
        ref = direct(x)
        torch.testing.assert_close(fixed(x), ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
        # The 784-tap layer through the legacy path is no convolution at all for odd lengths ...
        h = torch.randn(2, 140, 783, generator=torch.Generator().manual_seed(0))
        good = direct.blocks[3].conv.depthwise(h)
        bad = legacy.blocks[3].conv.depthwise(h)
        assert legacy.blocks[3].conv.conv_path(h, legacy.blocks[3].conv.kernel().shape) == "official_fft"
        assert (bad - good).norm() > 0.3 * good.norm()
        # ... and exact for even lengths, as in every official task but Speech Commands MFCC.
        even = io["input"]
        torch.testing.assert_close(legacy(even), direct(even), rtol=1e-4, atol=1e-4 * direct(even).abs().max().item())
