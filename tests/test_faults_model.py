"""Bad inputs and faults on the model side, as a careless or hostile user would try them.

Each case asserts the exact kind of outcome: a specific error type whose message names the input
(settings, call arguments, inputs, checkpoints, the converter's --output), or a verified correct
result (fine-tuning with a new head, a backbone from a classifier checkpoint, NaN confined to its
sample). Tiny models only: every case runs in well under a second.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForImageClassification
from transformers import logging as transformers_logging

from ccnn_hf import (
    CCNNConfig,
    CCNNFeatureExtractor,
    CCNNForAudioClassification,
    CCNNForImageClassification,
    CCNNForSequenceClassification,
    CCNNImageProcessor,
    CCNNModel,
    build_ccnn,
)
from ccnn_hf.integrations.original import read_original_checkpoint
from helpers import REPO, require_shared

NAN, INF = float("nan"), float("inf")
PARTIAL = r" \(to load part of a checkpoint on purpose, use model\.load_state_dict\(state, strict=False\)\)$"
TINY = dict(hidden=8, blocks=1, kernel_width=8)
TINY_HF = dict(hidden_channels=8, num_blocks=1, kernel_hidden=8)

spec = importlib.util.spec_from_file_location("convert_original_ccnn", REPO / "conversion" / "convert_original_ccnn.py")
converter = importlib.util.module_from_spec(spec)
spec.loader.exec_module(converter)


@pytest.fixture(autouse=True)
def _quiet_transformers():
    level = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()  # the MISSING / UNEXPECTED report before our errors
    yield
    transformers_logging.set_verbosity(level)


# -- settings: one set of rules for CCNN (core) and CCNNConfig (transformers) -------------------------

SETTINGS = [
    ("mask_init_nan", dict(mask_init=NAN), r"mask_init must be a finite number in \(0, inf\), got nan"),
    ("mask_init_inf", dict(mask_init=INF), r"mask_init must be a finite number in \(0, inf\), got inf"),
    (
        "omega_0_zero_reference",
        dict(omega_0=0.0, mode="reference"),
        r"omega_0 must be a finite number in \(0, inf\), got 0\.0",
    ),
    (
        "omega_0_nan_reference",
        dict(omega_0=NAN, mode="reference"),
        r"omega_0 must be a finite number in \(0, inf\), got nan",
    ),
    (
        "base_sampling_rate_nan",
        dict(base_sampling_rate=NAN),
        r"base_sampling_rate must be a finite number in \(0, inf\) or None, got nan",
    ),
    ("hidden_fraction", dict(hidden=2.7), r"hidden_channels must be an integer >= 1, got 2\.7"),
    ("hidden_bool", dict(hidden=True), r"hidden_channels must be an integer >= 1, got True"),
    ("blocks_string", dict(blocks="2"), r"num_blocks must be an integer >= 0, got '2'"),
    ("kernel_width_zero", dict(kernel_width=0), r"kernel_hidden must be an integer >= 1, got 0"),
    ("dropout_nan", dict(dropout=NAN), r"dropout must be a finite number in \[0, 1\), got nan"),
    ("dropout_in_one", dict(dropout_in=1.0), r"dropout_in must be a finite number in \[0, 1\), got 1\.0"),
    ("mask_threshold_inf", dict(mask_threshold=INF), r"mask_threshold must be a finite number in \(0, 1\), got inf"),
    (
        "kernel_size_fraction",
        dict(kernel_size=3.5),
        r"kernel_size must be 'same', an integer >= 1 or one such integer per axis, got 3\.5",
    ),
    ("kernel_size_bool_entry", dict(kernel_size=[33, True]), r"kernel_size must be .*, got \[33, True\]"),
    (
        "base_resolution_fraction",
        dict(base_resolution=[32, 32.5]),
        r"base_resolution must hold 2 integer size\(s\) >= 2 \(one per axis: a single sample has no grid step "
        r"for the kernel\), got \[32, 32\.5\]",
    ),
    ("base_resolution_one_2d", dict(base_resolution=(1, 1)), r"base_resolution must hold 2 integer size\(s\) >= 2"),
    ("base_resolution_one_axis", dict(base_resolution=(8, 1)), r"size\(s\) >= 2 .*got .8, 1.$"),
    ("fft_threshold_negative", dict(fft_threshold=-1), r"fft_threshold must be an integer >= 0, got -1"),
    ("use_fft_string", dict(use_fft="yes"), r"use_fft must be True or False, got 'yes'"),
    ("causal_2d", dict(causal=True), r"causal kernels are only defined for data_dim=1, got data_dim=2"),
]


@pytest.mark.parametrize("overrides, message", [pytest.param(o, m, id=i) for i, o, m in SETTINGS])
def test_core_settings_are_checked(overrides, message):
    with pytest.raises(ValueError, match=r"^invalid CCNN: .*" + message):
        build_ccnn("cifar10_4_140", **{**TINY, **overrides})


@pytest.mark.parametrize("overrides, message", [pytest.param(o, m, id=i) for i, o, m in SETTINGS])
def test_config_settings_are_checked(overrides, message):
    with pytest.raises(ValueError, match=r"^invalid CCNNConfig: .*" + message):
        CCNNConfig.from_preset("cifar10_4_140", **{**TINY, **overrides})


@pytest.mark.parametrize(
    "overrides, message",
    [
        pytest.param(
            dict(std=[0, 0, 0]),
            r"std must be a list of finite numbers > 0, one per input channel, "
            r"got \[0, 0, 0\]",
            id="input_std_zero",
        ),
        pytest.param(
            dict(std=[1.0, NAN, 1.0]),
            r"std must be a list of finite numbers > 0.*got \[1\.0, nan, 1\.0\]",
            id="input_std_nan",
        ),
        pytest.param(dict(std="0.5"), r"std must be a list of finite numbers > 0.*got '0\.5'", id="input_std_string"),
        pytest.param(
            dict(mean=[0.5] * 5),
            r"mean must have one entry per input channel \(3\), got 5",
            id="input_mean_five_of_three",
        ),
        pytest.param(
            dict(mean=[0.5, INF, 0.5]),
            r"mean must be a list of finite numbers, one per input channel",
            id="input_mean_inf",
        ),
        pytest.param(
            dict(modality="video"),
            r"modality must be one of \('image', 'sequence', 'audio', 'tokens'\), got 'video'",
            id="modality",
        ),
        pytest.param(
            dict(use_token_embedding=True), r"use_token_embedding needs vocab_size >= 1", id="embedding_without_vocab"
        ),
    ],
)
def test_config_only_fields_are_checked(overrides, message):
    with pytest.raises(ValueError, match=r"^invalid CCNNConfig: .*" + message):
        CCNNConfig.from_preset("cifar10_4_140", **{**TINY, **overrides})


@pytest.mark.parametrize("build", [build_ccnn, CCNNConfig.from_preset])
def test_a_one_sample_base_is_refused_in_1d(build):
    """Was a ZeroDivisionError (the kernel grid's step is 2 / (size - 1))."""
    with pytest.raises(ValueError, match=r"base_resolution must hold 1 integer size\(s\) >= 2 .*got .1,.$"):
        build("smnist_4_140", base_resolution=(1,))


def test_every_problem_is_listed_at_once():
    with pytest.raises(ValueError, match=r"hidden_channels must be .*; mask_init must be .*; std must be"):
        CCNNConfig.from_preset("cifar10_4_140", hidden=2.7, mask_init=NAN, std=[0, 1, 1])


def test_fields_changed_after_construction_are_checked_by_the_model():
    config = CCNNConfig.from_preset("cifar10_4_140", **TINY)
    config.mask_init = NAN
    with pytest.raises(ValueError, match=r"mask_init must be a finite number in \(0, inf\), got nan"):
        CCNNForImageClassification(config)


def test_from_pretrained_overrides_are_checked(saved):
    with pytest.raises(ValueError, match=r"hidden_channels must be an integer >= 1, got 2\.5"):
        CCNNForImageClassification.from_pretrained(saved, hidden_channels=2.5)


def test_a_tampered_config_json_is_refused(saved, tmp_path):
    folder = tmp_path / "tampered"
    shutil.copytree(saved, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "hidden_channels": 8.5, "std": [0.2, 0.0, 0.2]}))
    with pytest.raises(ValueError, match=r"hidden_channels must be an integer >= 1, got 8\.5; .*std must be a list"):
        AutoModelForImageClassification.from_pretrained(folder)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        pytest.param(
            dict(image_std=[0, 0, 0]), r"image_std must be a list of finite numbers > 0.*got \[0, 0, 0\]", id="std_zero"
        ),
        pytest.param(dict(image_std=0.0), r"image_std must be .*got \[0\.0, 0\.0, 0\.0\]", id="scalar_std_zero"),
        pytest.param(dict(image_mean=[NAN, 0.5, 0.5]), r"image_mean must be a list of finite numbers", id="mean_nan"),
        pytest.param(
            dict(image_mean=[0.5] * 5), r"image_mean must have one entry per input channel \(3\), got 5", id="mean_five"
        ),
    ],
)
def test_image_processor_statistics_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=r"^invalid CCNNImageProcessor: .*" + message):
        CCNNImageProcessor(**kwargs)


@pytest.mark.parametrize(
    "kwargs", [dict(std=NAN), dict(std=0.0), dict(mean=INF)], ids=["std_nan", "std_zero", "mean_inf"]
)
def test_feature_extractor_statistics_are_checked(kwargs):
    with pytest.raises(ValueError, match=r"mean must be finite and std finite and > 0, got mean="):
        CCNNFeatureExtractor(**kwargs)


def test_preset_statistics_are_dropped_for_another_channel_count():
    grey = CCNNConfig.from_preset("cifar10_4_140", num_channels=1, **TINY)
    assert grey.mean == [0.0] and grey.std == [1.0]
    stated = CCNNConfig.from_preset("cifar10_4_140", num_channels=1, mean=[0.5], std=[0.25], **TINY)
    assert stated.mean == [0.5] and stated.std == [0.25]
    with pytest.raises(ValueError, match=r"std must have one entry per input channel \(1\), got 3"):
        CCNNConfig.from_preset("cifar10_4_140", num_channels=1, std=[0.2, 0.2, 0.2], **TINY)


# -- models shared by the call / input / loading cases -----------------------------------------------


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {
        "core": build_ccnn("cifar10_4_140", **TINY).eval(),
        "timm": timm.create_model("ccnn_2d", **TINY, num_classes=4).eval(),
        "image_head": CCNNForImageClassification(CCNNConfig.from_preset("cifar10_4_140", **TINY, num_labels=4)).eval(),
        "backbone": CCNNModel(CCNNConfig.from_preset("cifar10_4_140", **TINY)).eval(),
        "audio_head": CCNNForAudioClassification(CCNNConfig.from_preset("sc_raw_4_140", **TINY)).eval(),
        "sequence_head": CCNNForSequenceClassification(CCNNConfig.from_preset("smnist_4_140", **TINY)).eval(),
    }


MAIN_INPUT = {
    "core": lambda x: dict(x=x),
    "timm": lambda x: dict(x=x),
    "image_head": lambda x: dict(pixel_values=x),
    "backbone": lambda x: dict(pixel_values=x),
    "audio_head": lambda x: dict(input_values=x),
    "sequence_head": lambda x: dict(input_values=x),
}
GOOD_INPUT = {
    "core": (2, 3, 16, 16),
    "timm": (2, 3, 16, 16),
    "image_head": (2, 3, 16, 16),
    "backbone": (2, 3, 16, 16),
    "audio_head": (2, 1, 4000),
    "sequence_head": (2, 1, 392),
}


def call(models, target: str, x=None, **kwargs):
    x = torch.randn(GOOD_INPUT[target]) if x is None else x
    with torch.no_grad():
        return models[target](**MAIN_INPUT[target](x), **kwargs)


# -- resolution= / sampling_rate= at call time --------------------------------------------------------

CALLS = [
    ("core", dict(resolution="32"), TypeError, r"resolution must be a number, got str '32'"),
    ("core", dict(resolution=NAN), ValueError, r"resolution must be a finite number > 0, got nan"),
    ("core", dict(resolution=INF), ValueError, r"resolution must be a finite number > 0, got inf"),
    ("core", dict(resolution=True), TypeError, r"resolution must be a number, got bool True"),
    ("core", dict(resolution=0.001), ValueError, r"resolution sizes must be >= 1 \(grid points per axis\), got 0\.001"),
    (
        "core",
        dict(resolution=1e9),
        ValueError,
        r"resolution=1000000000\.0 is 3\.12e\+07, 3\.12e\+07 x the model's base "
        r"\(32, 32\); allowed is 1/64 to 64 x per axis",
    ),
    ("core", dict(resolution=(32, 4096)), ValueError, r"resolution=\(32, 4096\) is 1, 128 x .*allowed is 1/64 to 64 x"),
    (
        "core",
        dict(resolution=(64,)),
        ValueError,
        r"resolution must hold 2 size\(s\) \(one per axis\) or one number, got \(64,\)",
    ),
    (
        "core",
        dict(resolution=32, sampling_rate=16000),
        ValueError,
        r"pass resolution= .* or sampling_rate= .*, not both",
    ),
    ("core", dict(sampling_rate=8000), ValueError, r"sampling_rate= needs a model with base_sampling_rate"),
    ("timm", dict(resolution=INF), ValueError, r"resolution must be a finite number > 0, got inf"),
    ("image_head", dict(resolution="32"), TypeError, r"resolution must be a number, got str '32'"),
    ("image_head", dict(resolution=1e-9), ValueError, r"resolution sizes must be >= 1"),
    ("backbone", dict(resolution=[16, -2]), ValueError, r"resolution must be a finite number > 0, got -2"),
    ("backbone", dict(resolution=32, sampling_rate=8000), ValueError, r"not both"),
    ("audio_head", dict(sampling_rate=NAN), ValueError, r"sampling_rate must be a finite number > 0, got nan"),
    ("audio_head", dict(sampling_rate=True), TypeError, r"sampling_rate must be a number, got bool True"),
    ("audio_head", dict(sampling_rate="8k"), TypeError, r"sampling_rate must be a number, got str '8k'"),
    (
        "audio_head",
        dict(sampling_rate=16),
        ValueError,
        r"sampling_rate=16 is 0\.001 x the model's base 16000.*1/64 to 64 x",
    ),
    (
        "audio_head",
        dict(sampling_rate=torch.tensor([8000, 16000])),
        ValueError,
        r"sampling_rate must be one rate for the whole batch, got \[8000, 16000\]",
    ),
    ("sequence_head", dict(resolution=784, sampling_rate=1.0), ValueError, r"not both"),
]


@pytest.mark.parametrize(
    "target, kwargs, error, message",
    [pytest.param(*case, id=f"{case[0]}-{'-'.join(case[1])}-{i}") for i, case in enumerate(CALLS)],
)
def test_bad_resolution_and_sampling_rate_are_named(models, target, kwargs, error, message):
    with pytest.raises(error, match=message):
        call(models, target, **kwargs)


@pytest.mark.parametrize(
    "args, message",
    [
        pytest.param(
            (2.5,), r"invalid reset_classifier arguments: num_classes must be an integer >= 0, got 2\.5", id="fraction"
        ),
        pytest.param((-1,), r"num_classes must be an integer >= 0, got -1", id="negative"),
        pytest.param((3, "mean"), r"global_pool must be one of \('avg', 'max', ''\), got 'mean'", id="pool"),
    ],
)
def test_reset_classifier_arguments_are_checked(args, message):
    model = build_ccnn("cifar10_4_140", **TINY)
    with pytest.raises(ValueError, match=message):
        model.reset_classifier(*args)
    assert model.num_classes == 10 and model.head.fc.out_features == 10  # untouched


def test_good_call_arguments_still_work(models):
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        as_tensor = models["core"](x, resolution=torch.tensor([64, 64]))
        torch.testing.assert_close(as_tensor, models["core"](x, resolution=64), rtol=0, atol=0)
        rate = torch.tensor([8000, 8000])  # a processor's per-sample rates, all equal
        audio = models["audio_head"](input_values=torch.randn(2, 1, 4000), sampling_rate=rate).logits
    assert torch.isfinite(audio).all()


# -- unknown keyword arguments ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "target, name",
    [
        ("image_head", "input_ids"),
        ("image_head", "bogus_arg"),
        ("backbone", "head_mask"),
        ("audio_head", "past_observed_mask"),
        ("sequence_head", "observed_masks"),
        ("sequence_head", "bogus_arg"),
    ],
)
def test_unknown_keyword_arguments_raise(models, target, name):
    with pytest.raises(TypeError, match=rf"unexpected keyword argument '{name}'"):
        call(models, target, **{name: 3})


# -- inputs -------------------------------------------------------------------------------------

INPUTS = [
    (
        "core",
        torch.randn(3, 16, 16),
        ValueError,
        r"expected a 4-D input \[batch, channels, height, width\] .*got shape \(3, 16, 16\) \(add a batch dimension",
    ),
    ("core", torch.randn(1, 1, 16, 16), ValueError, r"expected 3 input channel\(s\), got 1"),
    (
        "core",
        torch.zeros(1, 3, 16, 16, dtype=torch.uint8),
        TypeError,
        r"expected a floating point input, got dtype torch\.uint8",
    ),
    (
        "core",
        torch.zeros(1, 3, 16, 16, dtype=torch.complex64),
        TypeError,
        r"floating point input, got dtype torch\.complex64",
    ),
    (
        "core",
        torch.randn(1, 3, 16, 16, dtype=torch.float64),
        TypeError,
        r"the input is torch\.float64 and the model torch\.float32: convert one of them",
    ),
    (
        "image_head",
        torch.randn(1, 3, 16, 16).half(),
        TypeError,
        r"the input is torch\.float16 and the model torch\.float32",
    ),
    ("core", torch.randn(0, 3, 16, 16), ValueError, r"input is empty: shape \(0, 3, 16, 16\)"),
    ("core", torch.randn(1, 3, 0, 16), ValueError, r"input is empty: shape \(1, 3, 0, 16\)"),
    ("timm", torch.randn(2, 3, 16), ValueError, r"expected a 4-D input"),
    ("image_head", [[0.0] * 16] * 16, TypeError, r"expected a torch\.Tensor, got list"),
    (
        "image_head",
        torch.zeros(1, 3, 16, 16, dtype=torch.int64),
        TypeError,
        r"got dtype torch\.int64 \(convert with x\.float\(\)\)",
    ),
    ("backbone", torch.randn(1, 3, 8, 8, 8), ValueError, r"expected a 4-D input .*got shape \(1, 3, 8, 8, 8\)"),
    ("audio_head", [0.0] * 100, TypeError, r"expected a torch\.Tensor, got list"),
    ("audio_head", torch.randn(1, 2, 100), ValueError, r"expected 1 input channel\(s\), got 2"),
    ("sequence_head", torch.randn(1, 1, 0), ValueError, r"input is empty"),
]


@pytest.mark.parametrize(
    "target, x, error, message", [pytest.param(*case, id=f"{case[0]}-{i}") for i, case in enumerate(INPUTS)]
)
def test_bad_inputs_are_named(models, target, x, error, message):
    with pytest.raises(error, match=message):
        call(models, target, x)


def test_token_ids_must_be_integer_tensors(models):
    with pytest.raises(ValueError, match=r"input_ids must be integer token ids of shape \[B, L\], got torch\.float32"):
        models["sequence_head"](input_ids=torch.randn(2, 50))
    with pytest.raises(TypeError, match=r"input_ids must be a torch\.Tensor of integer token ids, got list"):
        models["sequence_head"](input_ids=[[1, 2, 3]])


def test_other_precisions_run_under_autocast(models):
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        low = models["core"](x.bfloat16())
    high = call(models, "core", x)
    assert low.dtype == torch.bfloat16 and (low.float() - high).abs().max() < 0.1 * high.abs().max() + 0.05


def test_non_finite_inputs_raise_when_asked():
    model = build_ccnn("cifar10_4_140", **TINY, check_finite=True).eval()
    x = torch.randn(2, 3, 16, 16)
    x[1, 0, 3, 3] = INF
    with pytest.raises(ValueError, match="input contains NaN or infinite values"):
        model(x)


@pytest.mark.parametrize("target", ["core", "image_head"])
def test_a_nan_sample_gives_nan_for_that_sample_only_in_eval_mode(models, target):
    """Documented behaviour without check_finite: eval-mode CCNNs treat samples independently."""
    x = torch.randn(2, 3, 16, 16)
    poisoned = x.clone()
    poisoned[1, 2, 5, 5] = NAN
    clean, dirty = call(models, target, x), call(models, target, poisoned)
    clean, dirty = (clean, dirty) if target == "core" else (clean.logits, dirty.logits)
    torch.testing.assert_close(dirty[0], clean[0], rtol=0, atol=0)
    assert torch.isnan(dirty[1]).all()


# -- loading: transformers folders ------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(models, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("saved")
    models["image_head"].save_pretrained(folder)
    return folder


def damaged(saved: Path, tmp_path: Path, change) -> Path:
    """A copy of the saved folder whose model.safetensors went through ``change(state) -> state``."""
    folder = tmp_path / "damaged"
    shutil.copytree(saved, folder)
    state = change(load_file(folder / "model.safetensors"))
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def without(*keys):
    return lambda state: {k: v for k, v in state.items() if k not in keys}


LOADING = [
    (
        "int32_weight",
        lambda s: {**s, "classifier.bias": s["classifier.bias"].to(torch.int32)},
        r"model\.safetensors does not match the model \(refusing to load it\): classifier\.bias is stored as I32 but "
        r"the model holds floating point \(torch\.float32\)",
    ),
    (
        "int_batchnorm_weight",
        lambda s: {**s, "ccnn.encoder.norm.weight": s["ccnn.encoder.norm.weight"].to(torch.int64)},
        r"ccnn\.encoder\.norm\.weight is stored as I64",
    ),
    (
        "float_counter",
        lambda s: {**s, "ccnn.encoder.norm.num_batches_tracked": torch.tensor(1.0)},
        r"ccnn\.encoder\.norm\.num_batches_tracked is stored as F32 but the model holds integer",
    ),
    (
        "missing_tensor",
        without("ccnn.encoder.blocks.0.conv.mask_width"),
        r"does not match the model \(refusing to load it\): missing tensors: ccnn\.encoder\.blocks\.0\.conv\.mask_width"
        + PARTIAL,
    ),
    ("missing_half_classifier", without("classifier.weight"), r"missing tensors: classifier\.weight" + PARTIAL),
    (
        "unexpected_tensor",
        lambda s: {**s, "extra.weight": torch.zeros(2)},
        r"unexpected tensors: extra\.weight" + PARTIAL,
    ),
    ("nan_weight", lambda s: set_to(s, "classifier.weight", NAN), r"classifier\.weight holds NaN or infinity$"),
    (
        "inf_batchnorm_variance",
        lambda s: set_to(s, "ccnn.encoder.norm.running_var", INF),
        r"ccnn\.encoder\.norm\.running_var holds NaN or infinity$",
    ),
    (
        "inf_mask_width",
        lambda s: set_to(s, "ccnn.encoder.blocks.0.conv.mask_width", INF),
        r"ccnn\.encoder\.blocks\.0\.conv\.mask_width holds NaN or infinity$",
    ),
    (
        "huge_mask_width",
        lambda s: set_to(s, "ccnn.encoder.blocks.0.conv.mask_width", 1e30),
        r"ccnn\.encoder\.blocks\.0\.conv\.mask_width is \[1\.0.*e\+30, .*\], beyond the largest mask width \+-1000$",
    ),
]


def set_to(state: dict, key: str, value: float) -> dict:
    return {**state, key: torch.full_like(state[key], value)}


@pytest.mark.parametrize("change, message", [pytest.param(c, m, id=i) for i, c, m in LOADING])
def test_damaged_checkpoints_are_refused_naming_the_tensors(saved, tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        CCNNForImageClassification.from_pretrained(damaged(saved, tmp_path, change))


def test_asking_for_the_loading_report_loads_with_a_warning_instead(saved, tmp_path, caplog):
    """output_loading_info=True (transformers' own way to inspect a load) returns the report of
    the missing tensors instead of refusing, and says so loudly; without it the load is refused."""
    folder = damaged(saved, tmp_path, without("ccnn.encoder.blocks.0.conv.mask_width"))
    with caplog.at_level("WARNING", logger="ccnn_hf.modeling_ccnn"):
        model, info = CCNNForImageClassification.from_pretrained(folder, output_loading_info=True)
    assert set(info["missing_keys"]) == {"ccnn.encoder.blocks.0.conv.mask_width"}
    assert "missing tensors: ccnn.encoder.blocks.0.conv.mask_width" in caplog.text
    assert "output_loading_info=True" in caplog.text
    with pytest.raises(ValueError, match="refusing to load it"):  # the report is asked for each time
        CCNNForImageClassification.from_pretrained(folder)


def test_a_reshaped_tensor_outside_the_head_is_refused_even_with_ignore_mismatched_sizes(saved, tmp_path):
    """ignore_mismatched_sizes=True is for a new head (another number of labels): a backbone tensor of
    another shape would be re-initialised without a word from the model; it is refused, naming both shapes."""
    folder = damaged(saved, tmp_path, lambda s: {**s, "ccnn.encoder.blocks.0.conv.mask_width": torch.full((3,), 0.5)})
    with pytest.raises(
        ValueError,
        match=r"tensors of another shape outside the head, which ignore_mismatched_sizes=True would re-initialise: "
        r"ccnn\.encoder\.blocks\.0\.conv\.mask_width \(stored \(3,\), the model's \(2,\)\)",
    ):
        CCNNForImageClassification.from_pretrained(folder, ignore_mismatched_sizes=True)
    relabeled = CCNNForImageClassification.from_pretrained(saved, num_labels=7, ignore_mismatched_sizes=True)
    assert relabeled.classifier.out_features == 7  # a new head of another size stays allowed


def test_truncated_safetensors_file_is_named(saved, tmp_path):
    folder = tmp_path / "truncated"
    shutil.copytree(saved, folder)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"truncated/model\.safetensors is not a readable safetensors file"):
        CCNNForImageClassification.from_pretrained(folder)


def test_garbage_safetensors_file_is_named(saved, tmp_path):
    folder = tmp_path / "garbage"
    shutil.copytree(saved, folder)
    (folder / "model.safetensors").write_bytes(b"this is not a tensor file at all")
    with pytest.raises(ValueError, match=r"garbage/model\.safetensors is not a readable safetensors file"):
        CCNNForImageClassification.from_pretrained(folder)


class _Payload:
    """A pickle that would run a command when unpickled."""

    def __reduce__(self):
        return os.system, ("echo unpickled > /dev/null",)


def test_a_pickle_with_code_is_never_unpickled(saved, tmp_path):
    folder = tmp_path / "pickled"
    shutil.copytree(saved, folder)
    (folder / "model.safetensors").unlink()
    torch.save({"classifier.bias": _Payload()}, folder / "pytorch_model.bin")
    with pytest.raises(
        ValueError, match=r"pytorch_model\.bin holds objects other than tensors; refusing to unpickle it"
    ):
        CCNNForImageClassification.from_pretrained(folder)


def test_a_pickle_with_an_int32_weight_is_refused(saved, tmp_path):
    folder = tmp_path / "bin"
    shutil.copytree(saved, folder)
    state = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    torch.save({**state, "classifier.weight": state["classifier.weight"].to(torch.int32)}, folder / "pytorch_model.bin")
    with pytest.raises(
        ValueError, match=r"classifier\.weight is stored as torch\.int32 but the model holds floating point"
    ):
        CCNNForImageClassification.from_pretrained(folder)


def test_official_checkpoint_needing_code_is_refused(tmp_path):
    torch.save({"state_dict": {"network.conv1.bias": torch.zeros(2)}, "hook": _Payload()}, tmp_path / "model.ckpt")
    with pytest.raises(ValueError, match=r"model\.ckpt needs types outside the allow-list .*refusing to unpickle it"):
        read_original_checkpoint(tmp_path / "model.ckpt")


def test_new_head_for_fine_tuning_keeps_the_backbone(models, saved):
    relabeled = CCNNForImageClassification.from_pretrained(saved, num_labels=7, ignore_mismatched_sizes=True).eval()
    assert relabeled.classifier.out_features == 7 and torch.isfinite(relabeled.classifier.weight).all()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(
            relabeled.ccnn(pixel_values=x).pooler_output,
            models["image_head"].ccnn(pixel_values=x).pooler_output,
            rtol=0,
            atol=0,
        )


def test_backbone_and_classifier_checkpoints_load_into_each_other(models, saved, tmp_path):
    x = torch.randn(2, 3, 16, 16)
    backbone = CCNNModel.from_pretrained(saved).eval()  # the classifier's tensors are not the backbone's
    models["backbone"].save_pretrained(tmp_path / "backbone")
    new_head = CCNNForImageClassification.from_pretrained(tmp_path / "backbone", num_labels=3).eval()
    with torch.no_grad():
        torch.testing.assert_close(
            backbone(pixel_values=x).pooler_output,
            models["image_head"].ccnn(pixel_values=x).pooler_output,
            rtol=0,
            atol=0,
        )
        torch.testing.assert_close(
            new_head.ccnn(pixel_values=x).pooler_output,
            models["backbone"](pixel_values=x).pooler_output,
            rtol=0,
            atol=0,
        )
    assert new_head.classifier.out_features == 3 and torch.isfinite(new_head.classifier.weight).all()


def test_a_token_embedding_is_never_dropped_silently(tmp_path):
    config = CCNNConfig.from_preset("listops_4_140", vocab_size=16, use_token_embedding=True, num_channels=8, **TINY)
    CCNNForSequenceClassification(config).save_pretrained(tmp_path / "embedded")
    with pytest.raises(ValueError, match=r"unexpected tensors: embed_tokens\.weight"):  # would read raw ids instead
        CCNNForSequenceClassification.from_pretrained(tmp_path / "embedded", use_token_embedding=False)


# -- loading: timm ---------------------------------------------------------------------------------


def timm_load(models, tmp_path: Path, change, **kwargs):
    state = change(dict(models["timm"].state_dict()))
    save_file(state, tmp_path / "timm.safetensors")
    overlay = dict(file=str(tmp_path / "timm.safetensors"), num_classes=4)
    return timm.create_model(
        "ccnn_2d", **TINY, pretrained=True, pretrained_cfg_overlay=overlay, **{"num_classes": 4, **kwargs}
    ).eval()


@pytest.mark.parametrize(
    "change, kwargs, message",
    [
        pytest.param(
            without("blocks.0.conv.mask_width"),
            {},
            r"missing tensors: blocks\.0\.conv\.mask_width" + PARTIAL,
            id="missing",
        ),
        pytest.param(
            without("blocks.0.conv.mask_width"),
            dict(num_classes=3),
            r"missing tensors: blocks\.0\.conv\.mask_width" + PARTIAL,
            id="missing_with_new_head",
        ),  # timm loads non-strictly for a new head
        pytest.param(
            lambda s: {**s, "blocks.9.norm.weight": torch.ones(8)},
            {},
            r"unexpected tensors: blocks\.9\.norm\.weight" + PARTIAL,
            id="unexpected",
        ),
        pytest.param(
            without("head.fc.weight"), {}, r"missing tensors: head\.fc\.weight" + PARTIAL, id="half_classifier"
        ),
    ],
)
def test_timm_refuses_damaged_checkpoints(models, tmp_path, change, kwargs, message):
    with pytest.raises(
        ValueError, match=r"the checkpoint does not match the model \(refusing to load it\): .*" + message
    ):
        timm_load(models, tmp_path, change, **kwargs)


@pytest.mark.parametrize(
    "key, value, message",
    [
        pytest.param("blocks.0.conv.kernel_net.linears.0.weight", NAN, "holds NaN or infinity", id="nan_weight"),
        pytest.param("blocks.0.conv.mask_width", INF, "holds NaN or infinity", id="inf_mask_width"),
        pytest.param("blocks.0.conv.mask_width", -1e30, "beyond the largest mask width", id="huge_mask_width"),
    ],
)
@pytest.mark.parametrize("how", ["timm_pretrained", "timm_checkpoint_path", "core_load_state_dict"])
def test_non_finite_weights_and_impossible_mask_widths_are_refused_on_every_core_path(
    models, tmp_path, how, key, value, message
):
    def change(state):
        return set_to(state, key, value)

    with pytest.raises(ValueError, match=rf"^the state dict does not match the model \(refusing to load it\): {key}"):
        if how == "timm_pretrained":
            timm_load(models, tmp_path, change)
        elif how == "timm_checkpoint_path":
            save_file(change(dict(models["timm"].state_dict())), tmp_path / "timm.safetensors")
            timm.create_model("ccnn_2d", **TINY, num_classes=4, checkpoint_path=str(tmp_path / "timm.safetensors"))
        else:
            build_ccnn("cifar10_4_140", **TINY).load_state_dict(change(models["core"].state_dict()))


@pytest.mark.parametrize("value", [0.0, -1.0, -0.72])
def test_zero_and_negative_mask_widths_load(models, saved, tmp_path, value):
    """The width enters squared and, in continuous mode, bounded into [sigma_min, sigma_max]: a
    zero or negative value is a valid (trained) width; an earlier fsdd release held -0.72."""
    folder = damaged(saved, tmp_path, lambda s: set_to(s, "ccnn.encoder.blocks.0.conv.mask_width", value))
    model = CCNNForImageClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        assert torch.isfinite(model(pixel_values=torch.randn(2, 3, 16, 16)).logits).all()


def int32_norm(state):
    return {**state, "norm.weight": state["norm.weight"].to(torch.int32)}


@pytest.mark.parametrize("how", ["timm_pretrained", "timm_checkpoint_path", "core_load_state_dict"])
def test_an_int32_weight_is_refused_on_every_core_path(models, tmp_path, how):
    message = (
        r"^the state dict does not match the model \(refusing to load it\): norm\.weight is stored as torch\.int32"
    )
    with pytest.raises(ValueError, match=message + r" but the model holds floating point \(torch\.float32\)$"):
        if how == "timm_pretrained":
            timm_load(models, tmp_path, int32_norm)
        elif how == "timm_checkpoint_path":
            save_file(int32_norm(dict(models["timm"].state_dict())), tmp_path / "timm.safetensors")
            timm.create_model("ccnn_2d", **TINY, num_classes=4, checkpoint_path=str(tmp_path / "timm.safetensors"))
        else:
            build_ccnn("cifar10_4_140", **TINY).load_state_dict(int32_norm(models["core"].state_dict()))


def test_timm_new_head_keeps_the_backbone(models, tmp_path):
    model = timm_load(models, tmp_path, lambda s: s, num_classes=3)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x), models["timm"].forward_features(x), rtol=0, atol=0)
        assert model(x).shape == (2, 3)


# -- the converter's --output ---------------------------------------------------------------------------


def test_converter_output_naming_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "taken").write_text("mine")
    with pytest.raises(SystemExit) as stopped:
        converter.main(
            [
                "--checkpoint",
                str(tmp_path / "none.ckpt"),
                "--preset",
                "smnist_4_140",
                "--output",
                str(tmp_path / "taken"),
            ]
        )
    assert stopped.value.code == 2
    assert f"--output {tmp_path / 'taken'} is a file; give a folder" in capsys.readouterr().err
    assert (tmp_path / "taken").read_text() == "mine"


def test_converter_keeps_an_existing_folder_without_overwrite(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"already holds files; pass --overwrite"):
        converter.convert(tmp_path / "none.ckpt", "smnist_4_140", tmp_path / "out")
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_converter_never_overwrites_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.json").write_text(json.dumps({"accuracy": 0.9}))
    with pytest.raises(
        ValueError, match=r"was not written by this converter .*refusing to replace it, even with --overwrite"
    ):
        converter.convert(tmp_path / "none.ckpt", "smnist_4_140", tmp_path / "out", overwrite=True)
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == {"accuracy": 0.9}


def test_failed_conversion_leaves_the_previous_folder_and_no_partial_one(tmp_path):
    previous = {"source_checkpoint": "old.ckpt"}
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.json").write_text(json.dumps(previous))
    core = build_ccnn("smnist_4_140", **TINY)  # not the preset's shapes: refused while converting
    save_file(core.state_dict(), tmp_path / "small.safetensors")
    with pytest.raises(ValueError, match="official state dict does not match the model"):
        converter.convert(tmp_path / "small.safetensors", "smnist_4_140", tmp_path / "out", overwrite=True)
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "small.safetensors"]


def test_overwrite_replaces_a_converted_folder(tmp_path):
    weights = require_shared("fixtures", "reference", "smnist_ccnn_4_140", "model.safetensors")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.json").write_text(json.dumps({"source_checkpoint": "old.ckpt"}))
    (tmp_path / "out" / "stale.txt").write_text("from the last conversion")
    converter.convert(weights, "smnist_4_140", tmp_path / "out", overwrite=True)
    assert json.loads((tmp_path / "out" / "results.json").read_text())["source_checkpoint"] == "model.safetensors"
    assert not (tmp_path / "out" / "stale.txt").exists()
    assert f'from_pretrained("{tmp_path / "out"}")' in (tmp_path / "out" / "README.md").read_text()  # the real folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def official_state(core: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``core``'s state dict under the official code's names (the converter's input)."""
    renames = [
        (r"^stem\.conv\.", "conv1."),
        (r"^stem\.norm\.", "norm1."),
        (r"^blocks\.(\d+)\.conv\.", r"blocks.\1.conv1."),
        (r"^blocks\.(\d+)\.norm\.", r"blocks.\1.norm1."),
        (r"^blocks\.(\d+)\.linear\.", r"blocks.\1.linear1."),
        (r"^norm\.", "out_norm."),
        (r"^head\.fc\.", "out_layer."),
        (r"\.kernel_net\.", ".Kernel."),
        (r"\.mask_width$", ".mask_width_param"),
    ]
    out = {}
    for key, value in core.state_dict().items():
        for pattern, repl in renames:
            key = re.sub(pattern, repl, key)
        out[key] = value.clone()
    return out


@pytest.mark.parametrize("value", [NAN, INF])
def test_converter_refuses_non_finite_weights(tmp_path, value):
    core = build_ccnn("smnist_4_140", mode="reference", init_scheme="official")
    state = official_state(core)
    save_file(state, tmp_path / "good.safetensors")
    converter.convert(tmp_path / "good.safetensors", "smnist_4_140", tmp_path / "good")  # the helper is right
    state["blocks.1.conv1.Kernel.linears.0.weight"][0, 0] = value
    save_file(state, tmp_path / "nan.safetensors")
    with pytest.raises(
        ValueError,
        match=r"nan\.safetensors does not match the model \(refusing to load it\): "
        r"blocks\.1\.conv\.kernel_net\.linears\.0\.weight holds NaN or infinity$",
    ):
        converter.convert(tmp_path / "nan.safetensors", "smnist_4_140", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_converter_verification_fails_on_non_finite_outputs(tmp_path, monkeypatch):
    """NaN > tolerance is False: a NaN difference must not pass as verified."""
    core = build_ccnn("smnist_4_140", mode="reference", init_scheme="official")
    save_file(official_state(core), tmp_path / "good.safetensors")
    monkeypatch.setattr(converter, "load_original_state_dict", lambda model, state: _NanModel())
    with pytest.raises(RuntimeError, match="disagrees with the raw state dict: relative difference nan"):
        converter.convert(tmp_path / "good.safetensors", "smnist_4_140", tmp_path / "out")
    assert not (tmp_path / "out").exists()


class _NanModel(torch.nn.Module):
    def forward(self, x):
        return torch.full((x.shape[0], 10), NAN)


def test_results_json_is_never_written_with_nan(tmp_path):
    from ccnn_hf.training.files import write_json_atomic

    with pytest.raises(ValueError, match=r"refusing to write .*results\.json: Out of range float values"):
        write_json_atomic(tmp_path / "results.json", {"verification_max_abs_diff": NAN})
    assert list(tmp_path.iterdir()) == []


# == issue 27: tracebacks of the converter, the release publisher and a config without model_type ======
# Each command row must end in one "error:" line on stderr and exit status 2, never a traceback.

publish_spec = importlib.util.spec_from_file_location("publish", REPO / "model_cards" / "publish.py")
publisher = importlib.util.module_from_spec(publish_spec)
publish_spec.loader.exec_module(publisher)


def _official(tmp: Path) -> bytes:
    """The bytes of a small official-style Lightning checkpoint."""
    core = build_ccnn("smnist_4_140", **TINY)
    torch.save({"state_dict": {f"network.{k}": v for k, v in core.state_dict().items()}}, tmp / "good.ckpt")
    return (tmp / "good.ckpt").read_bytes()


def _sparse(tmp: Path) -> bytes:
    core = build_ccnn("smnist_4_140", **TINY)
    state = {f"network.{k}": v for k, v in core.state_dict().items()}
    key = next(k for k, v in state.items() if v.dim() >= 2)
    state[key] = state[key].to_sparse()
    torch.save({"state_dict": state}, tmp / "sparse.ckpt")
    return (tmp / "sparse.ckpt").read_bytes()


def _empty_safetensors(tmp: Path) -> bytes:
    save_file({}, tmp / "empty.safetensors")
    return (tmp / "empty.safetensors").read_bytes()


def convert(name: str, content: Callable[[Path], bytes]) -> Callable[[Path, pytest.MonkeyPatch], list[str]]:
    def argv(tmp: Path, monkeypatch) -> list[str]:
        (tmp / name).write_bytes(content(tmp))
        return ["--checkpoint", str(tmp / name), "--preset", "smnist_4_140", "--output", str(tmp / "out")]

    return argv


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def publish_offline(tmp: Path, monkeypatch) -> list[str]:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    return ["--org", "someone", "--names", "mnist2d"]


@dataclass(frozen=True)
class Command:
    id: str
    main: Callable[[list[str]], None]
    argv: Callable[[Path, pytest.MonkeyPatch], list[str]]
    match: str


COMMANDS = [
    Command(
        "convert_zero_byte_checkpoint",
        converter.main,
        convert("model.ckpt", lambda tmp: b""),
        r"convert_original_ccnn: error: .*model\.ckpt is empty \(0 bytes\)",
    ),
    Command(
        "convert_truncated_checkpoint",
        converter.main,
        convert("model.ckpt", lambda tmp: _official(tmp)[:2000]),
        r"error: .*model\.ckpt is not a readable PyTorch checkpoint: truncated, or not written by torch\.save",
    ),
    Command(
        "convert_text_file",
        converter.main,
        convert("notes.ckpt", lambda tmp: b"these are my notes, not weights\n"),
        r"error: .*notes\.ckpt is not a readable PyTorch checkpoint: truncated, or not written by torch\.save",
    ),
    Command(
        "convert_empty_safetensors",
        converter.main,
        convert("model.safetensors", _empty_safetensors),
        r"error: .*model\.safetensors holds no state dict",
    ),
    Command(
        "convert_garbage_safetensors",
        converter.main,
        convert("model.safetensors", lambda tmp: b"\x10\x00\x00\x00\x00\x00\x00\x00not json"),
        r"error: .*model\.safetensors is not a readable safetensors file",
    ),
    Command(
        "convert_sparse_tensor",
        converter.main,
        convert("sparse.ckpt", _sparse),
        r"error: .*sparse\.ckpt holds sparse tensors \(network\.stem\.conv\.kernel_net\.linears\.0\.weight\); "
        r"official CCNN checkpoints hold dense tensors only",
    ),
    Command(
        "publish_offline",
        publisher.main,
        publish_offline,
        r"publish: error: could not push someone/ccnn_2d_4_140-mnist to the Hub at http://127\.0\.0\.1:\d+ "
        r"\(ConnectError: .*\); check the connection and log in",
    ),
    Command(
        "publish_unknown_name",
        publisher.main,
        lambda tmp, monkeypatch: ["--org", "someone", "--names", "nosuch"],
        r"error: argument --names: invalid choice: 'nosuch' \(choose from 'mnist2d', 'smnist', .*'vowels_drop30'\)",
    ),
]


@pytest.mark.parametrize("command", COMMANDS, ids=[c.id for c in COMMANDS])
def test_commands_end_in_one_error_line(command: Command, tmp_path, monkeypatch, capsys):
    argv = command.argv(tmp_path, monkeypatch)
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        command.main(argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if "error:" in line] == [err.splitlines()[-1]]
    assert re.search(command.match, err.splitlines()[-1])
    assert not (tmp_path / "out").exists()


def _without_model_type(folder: Path, architecture: str | None = None) -> None:
    saved = json.loads((folder / "config.json").read_text())
    del saved["model_type"]
    if architecture:
        saved["architecture"] = architecture
    (folder / "config.json").write_text(json.dumps(saved))


NO_MODEL_TYPE = [  # transformers takes such a folder for a timm checkpoint (model_type "timm_wrapper")
    ("named_class", lambda folder: CCNNForImageClassification.from_pretrained(folder)),
    ("backbone_class", lambda folder: CCNNModel.from_pretrained(folder)),
    (
        "auto_with_trust_remote_code",
        lambda folder: AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True),
    ),
]


@pytest.mark.parametrize("load", [pytest.param(f, id=i) for i, f in NO_MODEL_TYPE])
def test_a_config_without_model_type_loads_through_the_ccnn_classes(models, tmp_path, load):
    models["image_head"].save_pretrained(tmp_path)
    _without_model_type(tmp_path)
    loaded = load(tmp_path).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = models["image_head"](pixel_values=x)
        output = loaded(pixel_values=x)
        if isinstance(loaded, CCNNModel):
            torch.testing.assert_close(
                output.pooler_output, models["image_head"].ccnn(pixel_values=x).pooler_output, rtol=0, atol=0
            )
        else:
            torch.testing.assert_close(output.logits, expected.logits, rtol=0, atol=0)
    assert loaded.config.model_type == "ccnn"


def test_a_config_without_model_type_of_another_timm_architecture_is_refused(models, tmp_path):
    models["image_head"].save_pretrained(tmp_path)
    _without_model_type(tmp_path, architecture="resnet50")
    with pytest.raises(
        ValueError, match="needs model_type 'ccnn', got 'timm_wrapper'. config.json has no \"model_type\""
    ):
        CCNNForImageClassification.from_pretrained(tmp_path)
