"""Behaviour of the core CCNN a user relies on: shapes, causality, gradients, batching, init, errors."""

from __future__ import annotations

import math
from unittest import mock

import pytest
import torch
from helpers import assert_grad_checkpointing_matches
from hypothesis import given, settings
from hypothesis import strategies as st

import ccnn_hf.ccnn as ccnn_module
from ccnn_hf import CCNN, PRESETS, build_ccnn, get_preset, list_presets

TINY = dict(hidden=12, blocks=2, kernel_width=8)


def tiny(preset: str = "cifar10_4_140", **kw) -> CCNN:
    torch.manual_seed(0)
    return build_ccnn(preset, **{**TINY, **kw})


@settings(max_examples=12, deadline=None)
@given(
    data_dim=st.integers(1, 3),
    size=st.integers(1, 11),
    batch=st.integers(1, 3),
    classes=st.integers(1, 4),
    mode=st.sampled_from(["continuous", "reference"]),
)
def test_output_shape_for_any_dimension_and_size(data_dim, size, batch, classes, mode):
    causal = data_dim == 1
    model = build_ccnn(
        "cifar10_4_140",
        data_dim=data_dim,
        base_resolution=(7,) * data_dim,
        kernel_size=7,
        causal=causal,
        num_classes=classes,
        in_chans=2,
        mode=mode,
        **TINY,
    ).eval()
    with torch.no_grad():
        out = model(torch.randn(batch, 2, *(size,) * data_dim))
    assert out.shape == (batch, classes)  # the batch dimension is never squeezed away
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("mode", ["continuous", "reference"])
def test_causal_model_ignores_the_future(mode):
    model = tiny("smnist_4_140", base_resolution=(64,), mode=mode, num_classes=0, global_pool="").eval()
    x = torch.randn(1, 1, 64)
    y = x.clone()
    y[..., 40:] = torch.randn(1, 1, 24)
    with torch.no_grad():
        a, b = model(x), model(y)
    torch.testing.assert_close(a[..., :40], b[..., :40])
    assert (a[..., 40:] - b[..., 40:]).abs().max() > 1e-3


@pytest.mark.parametrize("data_dim", [1, 2, 3])
def test_fft_and_direct_paths_agree_in_every_dimension(data_dim):
    kw = dict(data_dim=data_dim, base_resolution=(9,) * data_dim, kernel_size=9, causal=data_dim == 1, mask_init=2.0)
    fft = tiny(conv_impl="fft", **kw).eval()
    direct = tiny(conv_impl="direct", **kw).eval()
    direct.load_state_dict(fft.state_dict())
    x = torch.randn(2, 3, *(9,) * data_dim)
    with torch.no_grad():
        a, b = fft(x), direct(x)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * b.abs().max().item())


@pytest.mark.parametrize("preset", ["cifar10_4_140", "smnist_4_140", "pathfinder2d_4_140"])
def test_every_parameter_receives_a_gradient(preset):
    model = tiny(preset, num_classes=42)
    x = torch.randn(2, model.in_chans, *[min(r, 16) for r in model.base_resolution])
    # In train mode the stem's BatchNorm subtracts each channel's batch mean, which removes the
    # constant offsets the stem conv's two biases add: their gradient is exactly zero up to
    # rounding (as in the official model). With running statistics (eval) they count too.
    offsets = {"stem.conv.bias", "stem.conv.channel_mixer.bias"}
    for mode, exempt in (("train", offsets), ("eval", set())):
        model.zero_grad(set_to_none=True)
        getattr(model, mode)()
        model(x).mean().backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
        assert not set(missing) - exempt, mode
    stem_bias_grad = [p.grad.abs().max().item() for n, p in model.named_parameters() if n in offsets]
    assert min(stem_bias_grad) > 1e-6  # eval: the biases matter


def test_eval_batch_equals_single_samples():
    model = tiny().eval()
    x = torch.randn(4, 3, 20, 20)
    with torch.no_grad():
        batched = model(x)
        single = torch.cat([model(x[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-5)


def test_binary_presets_give_one_logit():
    model = tiny("pathfinder2d_4_140").eval()
    with torch.no_grad():
        assert model(torch.randn(3, 1, 16, 16)).shape == (3, 1)
        assert model(torch.randn(1, 1, 16, 16)).shape == (1, 1)


def test_grad_checkpointing_gives_the_same_outputs_and_gradients():
    assert_grad_checkpointing_matches(tiny().train(), torch.randn(2, 3, 12, 12), seed=1, rtol=1e-4, atol=1e-6)


def test_kernels_are_generated_at_build_time_not_by_the_first_forward():
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.eval()(torch.randn(1, 3, 32, 32))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any("train_length" in k or "initialized" in k for k in after)


def logit_rms(model: CCNN, x: torch.Tensor, **kwargs) -> float:
    """Root mean square of the logits: their variance about zero, which is what "unit variance at
    initialisation" means for zero-mean random weights (a binary model's single logit has no
    spread across classes to measure, so a batch standard deviation would not do)."""
    with torch.no_grad():
        return model(x, **kwargs).pow(2).mean().sqrt().item()


# stl10_6_380 calibrates and runs 380 channels at 256x256: the one preset marked slow.
@pytest.mark.parametrize(
    "preset", [pytest.param(p, marks=pytest.mark.slow) if p == "stl10_6_380" else p for p in list_presets()]
)
def test_logits_have_unit_variance_at_init(preset):
    torch.manual_seed(0)
    model = build_ccnn(preset).eval()
    batch = 2 if math.prod(model.base_resolution) > 16384 else 4
    x = torch.randn(batch, model.in_chans, *model.base_resolution, generator=torch.Generator().manual_seed(1))
    assert 0.3 <= logit_rms(model, x) <= 3.0


def test_large_presets_calibrate_on_a_bounded_probe_and_small_ones_on_eight_samples():
    """The initialisation probe's work is bounded (construction time and memory): raw audio at
    16 kHz with 380 channels calibrates on two samples, a 32x32 model on eight."""
    batches = {}
    for preset in ("sc_raw_6_380", "cifar10_4_140"):
        with mock.patch.object(ccnn_module, "_probe", wraps=ccnn_module._probe) as probe:
            model = build_ccnn(preset).eval()
        batches[preset] = probe.call_args.args[0]
        assert probe.call_count == 1 and probe.call_args.args[2] == tuple(model.base_resolution)
    assert batches == {"sc_raw_6_380": 2, "cifar10_4_140": 8}


@pytest.mark.parametrize("preset", ["smnist_4_140", "cifar10_4_140"])
def test_official_init_misses_the_papers_aim_and_ours_meets_it(preset):
    """The official Chang-only init gives logits far below unit variance (0.46 and 0.125 measured
    on the official code); ours meets it."""
    rms = {}
    for scheme in ("official", "unit_variance"):
        torch.manual_seed(0)
        model = build_ccnn(preset, mode="reference", init_scheme=scheme).eval()
        x = torch.randn(8, model.in_chans, *model.base_resolution, generator=torch.Generator().manual_seed(1))
        rms[scheme] = logit_rms(model, x)
    assert rms["official"] < 0.6
    assert 0.3 <= rms["unit_variance"] <= 3.0


def test_presets_are_complete_and_count_parameters_like_the_official_code():
    tasks = {
        "smnist",
        "pmnist",
        "scifar10",
        "sc_mfcc",
        "sc_raw",
        "cifar10",
        "cifar100",
        "stl10",
        "listops",
        "text",
        "image",
        "pathfinder",
        "image2d",
        "pathfinder2d",
    }
    assert {p.task for p in PRESETS.values()} == tasks
    assert len(PRESETS) == 2 * len(tasks)
    assert get_preset("smnist_4_140").params == 198_769 and get_preset("cifar10_6_380").params == 1_999_366
    for name, preset in PRESETS.items():
        for mode in ("continuous", "reference"):
            model = build_ccnn(name, mode=mode, init_scheme="official")
            assert sum(p.numel() for p in model.parameters()) == preset.params, (name, mode)


def test_presets_carry_the_official_hyperparameters():
    p = get_preset("cifar10_4_140")
    assert p.model["omega_0"] == 4231.568793085858 and p.model["mask_init"] == 0.75 and p.model["kernel_size"] == 33
    assert p.train["lr"] == 0.02 and p.train["weight_decay"] == 1e-4 and p.train["warmup_epochs"] == 5
    s = get_preset("smnist_4_140")
    assert s.model["causal"] and s.model["use_fft"] and s.model["base_resolution"] == (784,)
    assert get_preset("listops_6_380").model["kernel_hidden"] == 32
    assert get_preset("pmnist_4_140").model["dropout_in"] == 0.2
    assert get_preset("stl10_4_140").model["dropout_type"] == "element"


def test_overrides_reach_the_model():
    model = build_ccnn(
        "cifar10_4_140",
        hidden=16,
        blocks=3,
        kernel_width=8,
        omega_0=10.0,
        mask_init=0.3,
        dropout=0.2,
        in_channels=1,
        out_channels=5,
        data_dim=3,
        use_fft=True,
        init_scheme="official",
    )
    assert model.num_features == 16 and len(model.blocks) == 3 and model.num_classes == 5 and model.in_chans == 1
    assert model.data_dim == 3 and model.base_resolution == (32, 32, 32)
    assert model.blocks[0].conv.kernel_net.linears[0].weight.shape[0] == 8
    assert model.blocks[0].drop.p == 0.2 and model.blocks[0].conv.use_fft
    assert torch.allclose(model.stem.conv.mask_width, torch.tensor(0.3))


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "x, error, message",
    [
        (torch.randn(3, 16, 16), ValueError, "4-D input .*unsqueeze"),
        (torch.randn(1, 3, 16), ValueError, "4-D input"),
        (torch.randn(1, 1, 16, 16), ValueError, "expected 3 input channel"),
        (torch.randn(0, 3, 16, 16), ValueError, "empty"),
        (torch.randn(1, 3, 0, 16), ValueError, "empty"),
        (torch.zeros(1, 3, 16, 16, dtype=torch.long), TypeError, "floating point"),
        (torch.zeros(1, 3, 16, 16, dtype=torch.complex64), TypeError, "floating point"),
        ([[1.0]], TypeError, "torch.Tensor"),
    ],
)
def test_bad_inputs_are_named(x, error, message):
    with pytest.raises(error, match=message):
        tiny()(x)


def test_nan_inputs_are_refused_when_checking_is_on():
    x = torch.randn(1, 3, 8, 8)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        tiny(check_finite=True)(x)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(data_dim=4), "data_dim"),
        (dict(kernel_size=4), "odd"),
        (dict(mode="fast"), "mode"),
        (dict(conv_impl="gpu"), "conv_impl"),
        (dict(kernel_net="mlp"), "kernel_net must be one of"),
        (dict(dropout=1.5), "dropout"),
        (dict(mask_init=-1.0), "mask_init"),
        (dict(hidden=0), "hidden_channels"),
        (dict(base_resolution=(32,)), "base_resolution"),
        (dict(causal=True), "causal"),
        (dict(init_scheme="xavier"), "init_scheme"),
        (dict(widht=3), "unknown CCNN setting 'widht'"),
    ],
)
def test_invalid_configurations_are_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        build_ccnn("cifar10_4_140", **{**TINY, **overrides})


def test_unknown_preset_suggests_close_names():
    with pytest.raises(ValueError, match="Did you mean cifar10_4_140"):
        build_ccnn("cifar10_4_14")


def test_encode_masked_names_the_argument_object_it_takes():
    """``encode_masked`` takes one :class:`~ccnn_hf.ccnn.Sampling`; an old-style call with a resolution
    gets a TypeError saying so instead of an AttributeError deep inside."""
    from ccnn_hf.ccnn import Sampling

    model = build_ccnn("smnist_4_140", hidden=8, blocks=1, base_resolution=[32]).eval()
    x = torch.randn(2, 1, 32)
    with pytest.raises(TypeError, match="encode_masked takes a Sampling .* got int"):
        model.encode_masked(x, 32)
    mask = torch.ones(2, 32)
    mask[1, 20:] = 0
    features, _, valid = model.encode_masked(x, Sampling(attention_mask=mask))
    assert valid is not None and features.shape == (2, 8, 32)
