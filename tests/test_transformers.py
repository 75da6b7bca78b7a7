"""The CCNN family in transformers: config, models, heads, losses, processors, Auto classes, Hub."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
import unittest.mock

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoImageProcessor,
    AutoModel,
    AutoModelForAudioClassification,
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
    pipeline,
)

import ccnn_hf
from ccnn_hf import (
    CCNN,
    CCNNConfig,
    CCNNFeatureExtractor,
    CCNNForAudioClassification,
    CCNNForImageClassification,
    CCNNForSequenceClassification,
    CCNNImageProcessor,
    CCNNModel,
    build_ccnn,
)

from helpers import assert_same_buffers

pytestmark = pytest.mark.hub  # also run against the oldest allowed versions (.ci/oldest)

TINY = dict(hidden_channels=12, num_blocks=2, kernel_hidden=8)


def image_config(**kw) -> CCNNConfig:
    return CCNNConfig.from_preset("cifar10_4_140", **{**TINY, "num_labels": 4, **kw})


@pytest.fixture(scope="module")
def image_model() -> CCNNForImageClassification:
    torch.manual_seed(0)
    return CCNNForImageClassification(image_config(id2label={0: "a", 1: "b", 2: "c", 3: "d"})).eval()


@pytest.fixture(scope="module")
def saved_image_model(image_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("image_model")
    image_model.save_pretrained(folder)
    return folder


def test_config_from_preset_and_validation():
    config = CCNNConfig.from_preset("smnist_4_140", num_labels=3, hidden=32)
    assert config.model_type == "ccnn" and config.data_dim == 1 and config.causal
    assert config.base_resolution == [784] and config.hidden_channels == 32 and config.num_labels == 3
    assert config.omega_0 == 2976.4910261630357
    binary = CCNNConfig.from_preset("pathfinder2d_4_140")
    assert binary.num_labels == 1 and binary.problem_type == "multi_label_classification"
    with pytest.raises(ValueError, match=r"data_dim must be one of \(1, 2, 3\), got 5"):
        CCNNConfig(data_dim=5)
    with pytest.raises(ValueError, match="mode must be one of"):
        CCNNConfig(mode="magic")
    with pytest.raises(ValueError, match="causal kernels are only defined for data_dim=1"):
        CCNNConfig(causal=True)
    with pytest.raises(ValueError, match="unknown preset"):
        CCNNConfig.from_preset("resnet50")


def test_config_round_trip_keeps_labels(tmp_path):
    config = image_config(id2label={0: "cat", 1: "dog", 2: "x", 3: "y"})
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, CCNNConfig) and loaded.id2label[1] == "dog" and loaded.label2id["dog"] == 1
    assert loaded.to_dict()["base_resolution"] == [32, 32]


def test_base_model_outputs(image_model):
    model = CCNNModel(image_config()).eval()
    x = torch.randn(2, 3, 20, 28)
    with torch.no_grad():
        out = model(pixel_values=x, output_hidden_states=True)
    assert out.last_hidden_state.shape == (2, 12, 20, 28)
    assert out.pooler_output.shape == (2, 12)
    assert len(out.hidden_states) == 3  # stem + 2 blocks
    torch.testing.assert_close(out.pooler_output, out.last_hidden_state.mean(dim=(2, 3)))
    tuple_out = model(pixel_values=x, return_dict=False)
    assert isinstance(tuple_out, tuple) and tuple_out[0].shape == (2, 12, 20, 28)


def test_heads_and_losses():
    torch.manual_seed(0)
    model = CCNNForImageClassification(image_config())
    out = model(pixel_values=torch.randn(3, 3, 16, 16), labels=torch.tensor([0, 3, 1]))
    assert (
        out.logits.shape == (3, 4) and out.loss.ndim == 0 and model.config.problem_type == "single_label_classification"
    )
    out.loss.backward()

    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, torch.tensor([0, 3, 1])))

    multi = CCNNForImageClassification(image_config(problem_type="multi_label_classification"))
    targets = torch.tensor([[1.0, 0, 0, 1], [0, 1, 0, 0]])
    out = multi(pixel_values=torch.randn(2, 3, 8, 8), labels=targets)
    torch.testing.assert_close(out.loss, F.binary_cross_entropy_with_logits(out.logits, targets))

    binary = CCNNForImageClassification(CCNNConfig.from_preset("pathfinder2d_4_140", **TINY))
    out = binary(pixel_values=torch.randn(2, 1, 16, 16), labels=torch.tensor([1, 0]))
    assert out.logits.shape == (2, 1)
    torch.testing.assert_close(out.loss, F.binary_cross_entropy_with_logits(out.logits, torch.tensor([[1.0], [0.0]])))

    regression = CCNNForImageClassification(image_config(num_labels=1, problem_type="regression"))
    out = regression(pixel_values=torch.randn(2, 3, 8, 8), labels=torch.tensor([0.5, -1.0]))
    torch.testing.assert_close(out.loss, F.mse_loss(out.logits.view(-1), torch.tensor([0.5, -1.0])))


def test_volumes_sequences_tokens_and_audio():
    volume = CCNNForImageClassification(image_config(data_dim=3, base_resolution=[8, 8, 8], num_channels=1)).eval()
    assert volume(pixel_values=torch.randn(2, 1, 8, 6, 10)).logits.shape == (2, 4)

    seq = CCNNForSequenceClassification(CCNNConfig.from_preset("smnist_4_140", **TINY)).eval()
    assert seq(input_values=torch.randn(2, 1, 100)).logits.shape == (2, 10)
    raw_ids = CCNNForSequenceClassification(CCNNConfig.from_preset("listops_4_140", **TINY)).eval()
    ids = torch.randint(0, 16, (2, 50))
    with torch.no_grad():
        torch.testing.assert_close(raw_ids(input_ids=ids).logits, raw_ids(input_values=ids.unsqueeze(1).float()).logits)
    embedded = CCNNForSequenceClassification(
        CCNNConfig.from_preset("listops_4_140", vocab_size=16, use_token_embedding=True, num_channels=8, **TINY)
    ).eval()
    assert embedded(input_ids=ids).logits.shape == (2, 10)

    audio = CCNNForAudioClassification(CCNNConfig.from_preset("sc_raw_4_140", **TINY)).eval()
    wave = torch.randn(2, 4000)
    with torch.no_grad():
        at_16k = audio(input_values=wave).logits
        at_8k = audio(input_values=wave, sampling_rate=8000).logits
    assert at_16k.shape == (2, 10) and not torch.allclose(at_16k, at_8k)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(pixel_values=torch.randn(3, 16, 16)), "4-D input"),
        (dict(pixel_values=torch.randn(1, 1, 16, 16)), "expected 3 input channel"),
        (dict(pixel_values=torch.randn(2, 3, 8, 8), labels=torch.tensor([0, 7])), r"labels must lie in \[0, 3\]"),
        (dict(pixel_values=torch.randn(2, 3, 8, 8), labels=torch.tensor([[0], [1]])), "integer labels of shape"),
        (dict(pixel_values=torch.randn(2, 3, 8, 8, 8)), "4-D input"),
    ],
)
def test_bad_inputs_are_named(image_model, kwargs, message):
    image_model.config.problem_type = None
    with pytest.raises(ValueError, match=message):
        image_model(**kwargs)


def test_save_and_load_restore_identical_logits(image_model, saved_image_model):
    files = set(os.listdir(saved_image_model))
    assert {
        "model.safetensors",
        "config.json",
        "preprocessor_config.json",
        "modeling_ccnn.py",
        "configuration_ccnn.py",
        "ccnn.py",
    } <= files
    x = torch.randn(2, 3, 32, 32)
    loaded = AutoModelForImageClassification.from_pretrained(saved_image_model).eval()
    assert isinstance(loaded, CCNNForImageClassification)
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixel_values=x).logits, image_model(pixel_values=x).logits, rtol=0, atol=0)
    assert isinstance(AutoModel.from_pretrained(saved_image_model), CCNNModel)
    assert isinstance(AutoImageProcessor.from_pretrained(saved_image_model), CCNNImageProcessor)


def test_checkpoint_runs_at_any_size_and_base_resolution_can_be_overridden(image_model, saved_image_model):
    loaded = AutoModelForImageClassification.from_pretrained(saved_image_model).eval()
    big = torch.randn(1, 3, 64, 64)
    small = torch.nn.functional.avg_pool2d(big, 2)
    with torch.no_grad():
        native = loaded(pixel_values=small).logits
        assert loaded(pixel_values=big).logits.shape == (1, 4)
    as_64 = AutoModelForImageClassification.from_pretrained(saved_image_model, base_resolution=[64, 64]).eval()
    assert as_64.config.base_resolution == [64, 64]
    with torch.no_grad():  # declared native at 64: a 64x64 input now uses the stored kernels 1:1
        torch.testing.assert_close(as_64(pixel_values=big).logits.shape, native.shape)
    assert as_64.ccnn.encoder.blocks[0].conv.input_scale(big) == (1.0, 1.0)


def test_half_precision_loading_keeps_generators_and_fft_in_float32(saved_image_model):
    model = AutoModelForImageClassification.from_pretrained(saved_image_model, dtype=torch.bfloat16).eval()
    assert model.classifier.weight.dtype == torch.bfloat16
    assert model.ccnn.encoder.blocks[0].conv.kernel_net.output_linear.weight.dtype == torch.float32
    reference = AutoModelForImageClassification.from_pretrained(saved_image_model).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        low = model(pixel_values=x.bfloat16()).logits.float()
        high = reference(pixel_values=x).logits
    assert (low - high).abs().max() < 0.1 * high.abs().max() + 0.05


def test_truncated_or_mismatched_checkpoints_are_refused(saved_image_model, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(saved_image_model, broken)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(Exception, match="(?i)safetensor|header|incomplete|truncat|deserializ"):
        AutoModelForImageClassification.from_pretrained(broken)

    with pytest.raises(Exception, match="(?i)size mismatch|shape|mismatch"):
        AutoModelForImageClassification.from_pretrained(saved_image_model, hidden_channels=16)
    relabeled = AutoModelForImageClassification.from_pretrained(
        saved_image_model, num_labels=7, ignore_mismatched_sizes=True
    )
    assert relabeled.classifier.out_features == 7 and torch.isfinite(relabeled.classifier.weight).all()


def test_init_weights_leaves_the_kernel_generators_alone():
    torch.manual_seed(0)
    config = image_config()
    model = CCNNForImageClassification(config)
    torch.manual_seed(0)
    plain = build_ccnn("cifar10_4_140", hidden=12, blocks=2, kernel_width=8, num_classes=0)
    ours = model.ccnn.encoder.state_dict()
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(ours[key], value, msg=key)


def test_a_layer_without_a_checkpoint_function_follows_the_attribute_protocol():
    """Before activation checkpointing is enabled a layer has no checkpoint function: hasattr and
    getattr see an AttributeError (the property raised KeyError)."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    model = CCNNForImageClassification(CCNNConfig.from_preset("cifar10_4_140", **TINY))
    layer = next(m for m in model.modules() if isinstance(m, GradientCheckpointingLayer))
    assert not hasattr(layer, "_gradient_checkpointing_func")
    assert getattr(layer, "_gradient_checkpointing_func", None) is None
    model.activation_checkpointing_enable()
    assert callable(layer._gradient_checkpointing_func)
    stored = layer.__dict__["_checkpoint_func"]
    with unittest.mock.patch.object(layer, "_gradient_checkpointing_func", side_effect=stored):
        pass  # transformers' own tests patch it like this: deleted, then set back to what was read
    assert layer.__dict__["_checkpoint_func"] is stored  # not wrapped once more


@pytest.mark.parametrize("use_reentrant", [False, True])
def test_activation_checkpointing_runs_through_the_layers_and_matches(use_reentrant):
    """transformers 5's way: the blocks are GradientCheckpointingLayers that checkpoint themselves."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    torch.manual_seed(0)
    model = CCNNForImageClassification(image_config(dropout=0.0)).train()
    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    assert len(layers) == model.config.num_blocks and all(isinstance(m, ccnn_hf.CCNNBlock) for m in layers)
    x = torch.randn(2, 3, 16, 16)
    plain = copy.deepcopy(model)
    ref = plain(pixel_values=x).logits
    ref.sum().backward()
    grads = {n: p.grad.clone() for n, p in plain.named_parameters()}
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": use_reentrant})
    assert model.is_activation_checkpointing and all(m.gradient_checkpointing for m in layers)
    calls = []
    for layer in layers:
        checkpoint = layer._gradient_checkpointing_func
        layer._gradient_checkpointing_func = lambda *a, _f=checkpoint, **k: calls.append(1) or _f(*a, **k)
    out = model(pixel_values=x).logits
    out.sum().backward()
    assert len(calls) == len(layers)
    torch.testing.assert_close(out, ref)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[name], msg=name, rtol=1e-4, atol=1e-6)
    assert_same_buffers(model, plain)  # the recomputation does not update BatchNorm statistics again
    model.activation_checkpointing_disable()
    assert not any(m.gradient_checkpointing for m in layers)


def test_image_processor_keeps_size_and_normalises():
    processor = CCNNImageProcessor(image_mean=[0.5, 0.5, 0.5], image_std=[0.25, 0.25, 0.25])
    image = Image.fromarray(np.full((20, 12, 3), 255, dtype=np.uint8))
    batch = processor(image, return_tensors="pt")
    assert batch["pixel_values"].shape == (1, 3, 20, 12)
    torch.testing.assert_close(batch["pixel_values"], torch.full((1, 3, 20, 12), 2.0))
    gray = CCNNImageProcessor(image_mean=[0.0], image_std=[1.0], num_channels=1)(image, return_tensors="pt")
    assert gray["pixel_values"].shape == (1, 1, 20, 12)
    resized = CCNNImageProcessor(do_resize=True, size={"height": 8, "width": 8})(image, return_tensors="pt")
    assert resized["pixel_values"].shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match="different sizes"):
        processor([image, Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8))], return_tensors="pt")


def test_a_one_channel_folders_processor_is_its_saved_one_whichever_file_transformers_reads(tmp_path):
    """transformers >= 5.25 gives AutoImageProcessor a local 2D folder's config.json (it holds timm's
    pretrained_cfg), <= 5.24 its preprocessor_config.json: both give the processor saved with the model."""
    config = image_config(num_channels=1, mean=[0.1307], std=[0.3081])
    CCNNForImageClassification(config).save_pretrained(tmp_path)
    saved = CCNNImageProcessor.from_pretrained(tmp_path).to_dict()
    assert (list(saved["image_mean"]), list(saved["image_std"]), saved["num_channels"]) == ([0.1307], [0.3081], 1)
    model_config = json.loads((tmp_path / "config.json").read_text())
    assert "pretrained_cfg" in model_config
    assert CCNNImageProcessor.from_dict(model_config).to_dict() == saved
    assert AutoImageProcessor.from_pretrained(tmp_path).to_dict() == saved
    resized = AutoImageProcessor.from_pretrained(tmp_path, do_resize=True, size={"height": 8, "width": 8})
    assert resized(Image.new("L", (20, 12)), return_tensors="pt")["pixel_values"].shape == (1, 1, 8, 8)


def test_saving_a_processor_that_transformers_would_not_read_back_warns(tmp_path, caplog):
    """In a local 2D folder transformers >= 5.25 builds AutoImageProcessor from config.json: a
    preprocessor_config.json with other settings is named, in whichever order the two are saved."""
    model = CCNNForImageClassification(image_config())
    other = CCNNImageProcessor(
        image_mean=[0.5] * 3, image_std=[0.5] * 3, do_resize=True, size={"height": 8, "width": 8}
    )
    with caplog.at_level("WARNING", logger="ccnn_hf.image_processing_ccnn"):
        model.save_pretrained(tmp_path / "default")
        assert not caplog.records
        model.save_pretrained(tmp_path / "first")
        other.save_pretrained(tmp_path / "first")
        other.save_pretrained(tmp_path / "then")
        model.save_pretrained(tmp_path / "then")
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2 and all("differs from the model's processor in" in m for m in warned)
    assert all("do_resize" in m and "image_mean" in m and "CCNNImageProcessor.from_pretrained" in m for m in warned)


def test_feature_extractor_passes_the_sampling_rate_and_never_resamples():
    extractor = CCNNFeatureExtractor(sampling_rate=16000, mean=0.0, std=0.5)
    ints = (np.sin(np.linspace(0, 20, 800)) * 2**14).astype(np.int16)
    batch = extractor(ints, sampling_rate=8000, return_tensors="pt")
    # mono audio as [B, L] and the rate a plain number, as transformers' collators can batch them
    assert batch["input_values"].shape == (1, 800) and type(batch["sampling_rate"]) is int
    assert batch["sampling_rate"] == 8000
    torch.testing.assert_close(batch["input_values"][0], torch.tensor(ints / 2**15 / (0.5 + 1e-5), dtype=torch.float32))
    padded = extractor([np.zeros(10, np.float32), np.ones(6, np.float32)], return_tensors="pt")
    assert padded["input_values"].shape == (2, 10) and padded["attention_mask"].shape == (2, 10)
    with pytest.raises(ValueError, match="empty"):
        extractor(np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        extractor(np.array([0.0, np.nan], np.float32))

    model = CCNNForAudioClassification(CCNNConfig.from_preset("sc_raw_4_140", **TINY)).eval()
    with torch.no_grad():
        via_extractor = model(**extractor(ints, sampling_rate=8000, return_tensors="pt")).logits
        direct = model(input_values=batch["input_values"], sampling_rate=8000).logits
    torch.testing.assert_close(via_extractor, direct)


def test_a_padded_batch_from_the_feature_extractor_gives_each_clip_its_own_logits():
    """The extractor returns the padding mask, so a short clip in a batch with a long one gets the
    logits it gets alone (without the mask the padding would count as silence)."""
    extractor = CCNNFeatureExtractor(sampling_rate=8000, mean=0.0, std=0.5)
    rng = np.random.default_rng(1)
    short, long = rng.standard_normal(500).astype(np.float32), rng.standard_normal(900).astype(np.float32)
    batch = extractor([short, long], return_tensors="pt")
    assert batch["attention_mask"].tolist() == [[1] * 500 + [0] * 400, [1] * 900]
    torch.manual_seed(0)
    model = CCNNForAudioClassification(CCNNConfig.from_preset("sc_raw_4_140", **TINY)).eval()
    with torch.no_grad():
        together = model(**batch).logits
        alone = model(**extractor(short, return_tensors="pt")).logits
        unmasked = model(**extractor([short, long], return_tensors="pt", return_attention_mask=False)).logits
    torch.testing.assert_close(together[0], alone[0], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(unmasked[0], alone[0], rtol=1e-4, atol=1e-5)


def test_feature_extractor_truncates_and_pads_as_transformers_extractors_do():
    """``truncation``, ``max_length`` and ``pad_to_multiple_of`` act on the waveforms and the mask
    alike (they were accepted and ignored: a clip longer than ``max_length`` broke the batch)."""
    extractor = CCNNFeatureExtractor(sampling_rate=8000)
    assert extractor.model_input_names == ["input_values", "attention_mask"]
    short, long = np.ones(500, dtype=np.float32), np.ones(900, dtype=np.float32)
    cut = extractor([short, long], padding="max_length", max_length=600, truncation=True, return_tensors="np")
    assert cut["input_values"].shape == (2, 600) and cut["attention_mask"].sum(1).tolist() == [500, 600]
    longest = extractor([short, long], truncation=True, max_length=600)
    assert np.asarray(longest["input_values"]).shape == (2, 600)
    rounded = extractor([short, long], pad_to_multiple_of=128)
    assert np.asarray(rounded["attention_mask"]).shape == (2, 1024)
    with pytest.raises(ValueError, match="max_length"):
        extractor([short, long], padding="max_length", max_length=600)


def test_the_trainers_default_collator_pads_examples_of_the_feature_extractor():
    """transformers' Trainer pads examples with ``DataCollatorWithPadding(feature_extractor)``: the
    extractor's own examples (``input_values [L]``) come back as a ``[B, L]`` batch with its mask,
    the short clip keeps its logits, and examples of another shape get an error naming it."""
    from transformers import DataCollatorWithPadding

    extractor = CCNNFeatureExtractor(sampling_rate=8000, mean=0.0, std=0.5)
    rng = np.random.default_rng(2)
    clips = [rng.standard_normal(n).astype(np.float32) for n in (500, 900)]
    examples = []
    for label, clip in enumerate(clips):
        features = extractor(clip)
        examples.append({"input_values": features["input_values"][0], "attention_mask": features["attention_mask"][0]})
        examples[-1].update(label=label, sampling_rate=features["sampling_rate"])
    batch = DataCollatorWithPadding(extractor)(examples)
    assert batch["input_values"].shape == (2, 900) and batch["labels"].tolist() == [0, 1]
    assert batch["attention_mask"].sum(1).tolist() == [500, 900]
    torch.manual_seed(0)
    model = CCNNForAudioClassification(CCNNConfig.from_preset("sc_raw_4_140", **TINY)).eval()
    with torch.no_grad():
        together = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        alone = model(**extractor(clips[0], return_tensors="pt")).logits
    torch.testing.assert_close(together[0], alone[0], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match=r"mono waveforms of shape \[L\], got shape \(1, 500\)"):
        DataCollatorWithPadding(extractor)([{"input_values": example["input_values"][None]} for example in examples])


def test_the_sequence_head_reads_one_channel_series_given_as_b_l():
    """``input_values [B, L]`` (the extractor's and transformers' collators' layout) is one channel
    for the sequence head as for the audio head; several channels still need ``[B, C, L]``."""
    torch.manual_seed(0)
    model = CCNNForSequenceClassification(CCNNConfig.from_preset("smnist_4_140", **TINY)).eval()
    series = torch.randn(3, 50)
    with torch.no_grad():
        torch.testing.assert_close(model(input_values=series).logits, model(input_values=series[:, None]).logits)
    two = CCNNForSequenceClassification(CCNNConfig.from_preset("smnist_4_140", **TINY, num_channels=2))
    with pytest.raises(ValueError):
        two(input_values=series)


def test_auto_classes_are_registered(saved_image_model, tmp_path):
    seq_config = CCNNConfig.from_preset("smnist_4_140", **TINY)
    assert isinstance(AutoModelForSequenceClassification.from_config(seq_config), CCNNForSequenceClassification)
    audio_config = CCNNConfig.from_preset("sc_raw_4_140", **TINY)
    audio = AutoModelForAudioClassification.from_config(audio_config)
    assert isinstance(audio, CCNNForAudioClassification)
    audio.save_pretrained(tmp_path)
    extractor = AutoFeatureExtractor.from_pretrained(tmp_path)
    assert isinstance(extractor, CCNNFeatureExtractor) and extractor.sampling_rate == 16000


def test_pipelines_from_a_folder(saved_image_model, tmp_path):
    classify = pipeline("image-classification", model=str(saved_image_model), trust_remote_code=False)
    image = Image.fromarray((np.random.default_rng(0).random((24, 40, 3)) * 255).astype(np.uint8))
    result = classify(image)
    assert {r["label"] for r in result} <= {"a", "b", "c", "d"} and abs(sum(r["score"] for r in result) - 1) < 1e-4

    audio = CCNNForAudioClassification(
        CCNNConfig.from_preset("sc_raw_4_140", **TINY, id2label={i: str(i) for i in range(10)})
    )
    audio.save_pretrained(tmp_path)
    listen = pipeline("audio-classification", model=str(tmp_path), trust_remote_code=False)
    result = listen(np.random.default_rng(0).standard_normal(8000).astype(np.float32))
    assert {r["label"] for r in result} <= {str(i) for i in range(10)} and abs(
        sum(r["score"] for r in result) - 1
    ) < 1e-4


REMOTE_CODE_SCRIPT = textwrap.dedent(
    """
    import sys, json, torch
    sys.modules["ccnn_hf"] = None  # the package is not importable here
    from transformers import AutoModelForImageClassification, AutoModel
    model = AutoModelForImageClassification.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    assert type(AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True)).__name__ == "CCNNModel"
    x = torch.load(sys.argv[2], weights_only=True)
    with torch.no_grad():
        print(json.dumps(model(pixel_values=x).logits.tolist()))
    """
)


def run_without_package(folder_or_repo: str, x: torch.Tensor, tmp_path) -> torch.Tensor:
    tensor_file = tmp_path / "x.pt"
    torch.save(x, tensor_file)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", REMOTE_CODE_SCRIPT, str(folder_or_repo), str(tensor_file)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return torch.tensor(json.loads(result.stdout.strip().splitlines()[-1]))


def test_remote_code_loads_without_the_package(image_model, saved_image_model, tmp_path):
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = image_model(pixel_values=x).logits
    torch.testing.assert_close(run_without_package(saved_image_model, x, tmp_path), expected, rtol=0, atol=1e-6)


# -- the Hub (a local server speaking its HTTP API) -----------------------------------------------


def test_push_to_hub_and_load_by_repo_id(local_hub, image_model, tmp_path):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    image_model.push_to_hub("ccnn-org/tiny-image")
    files = set(HfApi().list_repo_files("ccnn-org/tiny-image"))
    assert {"model.safetensors", "config.json", "preprocessor_config.json", "modeling_ccnn.py"} <= files
    x = torch.randn(2, 3, 32, 32)
    loaded = AutoModelForImageClassification.from_pretrained("ccnn-org/tiny-image").eval()
    with torch.no_grad():
        expected = image_model(pixel_values=x).logits
        torch.testing.assert_close(loaded(pixel_values=x).logits, expected, rtol=0, atol=0)
    classify = pipeline("image-classification", model="ccnn-org/tiny-image", trust_remote_code=False)
    assert len(classify(Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)))) == 4
    torch.testing.assert_close(run_without_package("ccnn-org/tiny-image", x, tmp_path), expected, rtol=0, atol=1e-6)
    with pytest.raises(RepositoryNotFoundError):
        HfApi().model_info("ccnn-org/does-not-exist")
    with pytest.raises(OSError, match="(?i)does not appear to have|not found|ccnn-org/does-not-exist"):
        AutoModelForImageClassification.from_pretrained("ccnn-org/does-not-exist")
    with pytest.raises(EntryNotFoundError):
        from huggingface_hub import hf_hub_download

        hf_hub_download("ccnn-org/tiny-image", "missing.bin")


def test_trainer_fine_tunes_for_a_few_steps(tmp_path):
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (64,), generator=g)
    images = torch.randn(64, 1, 12, 12, generator=g) * 0.3
    images[labels == 1, :, 3:9, 3:9] += 1.0  # class 1: a bright square
    data = Dataset.from_dict({"pixel_values": images.numpy(), "labels": labels.numpy()}).with_format("torch")
    torch.manual_seed(0)
    model = CCNNForImageClassification(
        image_config(num_labels=2, num_channels=1, base_resolution=[12, 12], kernel_size=13)
    )
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=16,
        num_train_epochs=3,
        learning_rate=5e-3,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=data)
    trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])


def test_config_defaults_are_the_core_models_defaults():
    """CCNNConfig() and CCNN() describe the same default network (the two signatures must not drift)."""
    import inspect

    core = {
        name: p.default
        for name, p in inspect.signature(CCNN.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    kwargs = CCNNConfig().ccnn_kwargs()
    assert kwargs.pop("num_classes") == 0  # the backbone; heads add the classifier
    assert set(kwargs) <= set(core)
    assert kwargs == {k: core[k] for k in kwargs}


def test_normalisation_fields_and_their_old_names(tmp_path):
    """``mean`` / ``std`` (timm's names); configs of earlier versions (``input_mean`` / ``input_std``,
    e.g. the released folders) still load, and the old names are not written back."""
    config = image_config(mean=[0.1, 0.2, 0.3], std=[0.5, 0.5, 0.5])
    assert config.mean == [0.1, 0.2, 0.3] and config.std == [0.5] * 3
    assert not [key for key in config.to_dict() if "_std" in key or "_mean" in key]
    saved = config.to_dict()
    saved["input_mean"], saved["input_std"] = saved.pop("mean"), saved.pop("std")
    (tmp_path / "config.json").write_text(json.dumps(saved))
    old = AutoConfig.from_pretrained(tmp_path)
    assert old.mean == [0.1, 0.2, 0.3] and old.std == [0.5] * 3
    assert "input_mean" not in old.to_dict() and "input_std" not in old.to_dict()
    from ccnn_hf import released_weights

    mnist = AutoConfig.from_pretrained(released_weights("mnist2d"))
    assert mnist.mean == [0.1307] and mnist.std == [0.3081]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_built_under_a_half_precision_default_dtype(dtype):
    """Generators (``_keep_in_fp32_modules_strict``) are created in float32 whatever the default
    dtype; the rest follows the default, and the unit-variance initialisation still measures."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        torch.manual_seed(0)
        model = CCNNForImageClassification(image_config()).eval()
        core = build_ccnn("smnist_4_140", hidden=8, blocks=1, kernel_width=8)
    finally:
        torch.set_default_dtype(previous)
    for name, tensor in [*model.state_dict().items(), *core.state_dict().items()]:
        if tensor.is_floating_point():
            assert tensor.dtype == (torch.float32 if "kernel_net" in name else dtype), name
    assert all(torch.isfinite(p.float()).all() for p in model.parameters())
    if dtype == torch.bfloat16:
        with torch.no_grad():
            assert torch.isfinite(model(pixel_values=torch.randn(2, 3, 16, 16, dtype=dtype)).logits).all()


def test_old_and_new_normalisation_names_that_disagree_are_refused():
    """A config.json holding both ``std`` and the former ``input_std`` with other values is
    ambiguous: one of them would be dropped without a word."""
    with pytest.raises(
        ValueError, match=r"std=\[0\.5, 0\.5, 0\.5\] and its former name input_std=\[0\.2, 0\.2, 0\.2\] disagree"
    ):
        CCNNConfig(num_channels=3, std=[0.5] * 3, input_std=[0.2] * 3)
    assert CCNNConfig(num_channels=3, mean=[0.1] * 3, input_mean=[0.1] * 3).mean == [0.1] * 3  # the same values: fine


def test_a_config_saved_before_sine_band_loads_the_band_its_weights_were_trained_in(tmp_path):
    """New models get ``sine_band="last_layer"``; a config.json without the field (written by an
    earlier version) loads as ``"equal"``, and a saved field is kept as it is."""
    assert CCNNConfig().sine_band == "last_layer"
    config = CCNNConfig.from_preset("smnist_4_140", hidden_channels=8, num_blocks=1)
    config.save_pretrained(tmp_path)
    assert CCNNConfig.from_pretrained(tmp_path).sine_band == "last_layer"
    saved = json.loads((tmp_path / "config.json").read_text())
    del saved["sine_band"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    legacy = CCNNConfig.from_pretrained(tmp_path)
    assert legacy.sine_band == "equal"
    filters = CCNNForSequenceClassification(legacy).ccnn.encoder.stem.conv.kernel_net.filters
    assert filters[-1].max_frequency == filters[0].max_frequency  # the layers share the band equally
    assert CCNNConfig.from_pretrained(tmp_path, sine_band="last_layer").sine_band == "last_layer"
    assert CCNNConfig.from_json_file(tmp_path / "config.json").sine_band == "equal"
