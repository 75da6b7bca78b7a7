"""Length semantics: what an input's size means, so that padding never changes a prediction.

Duration models (time series, audio) read every input at the base step; field-of-view models
(images, flattened images) read each row at its real size. Either way a series gets the logits it
gets alone: padded by any amount with its ``attention_mask``, inside any batch, in eval and in
train mode, on every conv path. Kernels are clipped to the taps that can touch the input.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from ccnn_hf import CCNN, CCNNConfig, build_ccnn
from ccnn_hf.continuous_conv import SeparableContinuousConv
from ccnn_hf.feature_extraction_ccnn import CCNNFeatureExtractor
from ccnn_hf.modeling_ccnn import (
    CCNNForAudioClassification,
    CCNNForImageClassification,
    CCNNForSequenceClassification,
    CCNNModel,
)

SEQUENCE = dict(base_resolution=[128], hidden_channels=16, num_blocks=2)  # the case of the issue
TINY = dict(hidden_channels=8, num_blocks=2, kernel_hidden=8)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().abs().max() / b.detach().abs().max())


def sequence_model(semantics: str, causal: bool, conv_impl: str = "auto", **kw) -> CCNNForSequenceClassification:
    torch.manual_seed(0)
    config = CCNNConfig.from_preset(
        "smnist_4_140", **SEQUENCE, causal=causal, conv_impl=conv_impl, length_semantics=semantics, **kw
    )
    return CCNNForSequenceClassification(config)


def padded(series: list[torch.Tensor], length: int, offsets: list[int] | None = None):
    """``[B, C, length]`` zeros-and-noise padded batch of ``series`` (each ``[C, L]``) and its mask."""
    offsets = offsets or [0] * len(series)
    x = torch.randn(len(series), series[0].shape[0], length, generator=torch.Generator().manual_seed(1)) * 100
    mask = torch.zeros(len(series), length, dtype=torch.long)
    for row, (s, start) in enumerate(zip(series, offsets)):
        x[row, :, start : start + s.shape[-1]] = s
        mask[row, start : start + s.shape[-1]] = 1
    return x, mask


@pytest.mark.parametrize("conv_impl", ["direct", "fft"])
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "centred"])
@pytest.mark.parametrize("semantics", ["duration", "field_of_view"])
def test_a_series_gets_the_logits_it_gets_alone_padded_by_any_amount_and_in_any_batch(semantics, causal, conv_impl):
    model = sequence_model(semantics, causal, conv_impl).eval()
    g = torch.Generator().manual_seed(0)
    series = torch.randn(1, 100, generator=g)
    others = [torch.randn(1, 60, generator=g), torch.randn(1, 37, generator=g)]
    with torch.no_grad():
        alone = model(input_values=series[None]).logits
        alone_others = [model(input_values=s[None]).logits for s in others]
        for extra in (28, 156):
            x, mask = padded([series], 100 + extra)
            assert relative(model(input_values=x, attention_mask=mask).logits, alone) <= 1e-5, extra
        x, mask = padded([series, *others], 300, offsets=[0, 0, 200])  # the last one padded on both sides
        together = model(input_values=x, attention_mask=mask).logits
    assert relative(together[:1], alone) <= 1e-5
    for row, expected in enumerate(alone_others, start=1):
        assert relative(together[row : row + 1], expected) <= 1e-5


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "centred"])
@pytest.mark.parametrize("semantics", ["duration", "field_of_view"])
def test_train_mode_batch_norm_gives_the_same_step_whatever_the_padding(semantics, causal):
    """Train mode: BatchNorm statistics over the real positions only, so the logits, the running
    statistics and the gradients of a batch do not depend on how far it is padded."""
    model = sequence_model(semantics, causal, dropout=0.0).train()
    g = torch.Generator().manual_seed(3)
    series = [torch.randn(1, n, generator=g) for n in (100, 60, 41)]
    results = []
    for length in (100, 256):
        m = copy.deepcopy(model)
        x, mask = padded(series, length)
        logits = m(input_values=x, attention_mask=mask).logits
        logits.pow(2).sum().backward()
        results.append((logits, dict(m.named_buffers()), {n: p.grad for n, p in m.named_parameters()}))
    (logits, buffers, grads), (logits2, buffers2, grads2) = results
    assert relative(logits2, logits) <= 1e-5
    for name, value in buffers.items():
        torch.testing.assert_close(buffers2[name], value, rtol=1e-5, atol=1e-6, msg=name)
    largest = max(float(g.abs().max()) for g in grads.values() if g is not None)
    for name, grad in grads.items():  # (biases before a BatchNorm have gradients of about 0: no relative measure)
        if grad is not None:
            assert float((grads2[name] - grad).abs().max()) <= 1e-4 * largest, name


def test_the_core_and_every_head_keep_a_padded_inputs_logits():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    image = CCNNForImageClassification(CCNNConfig.from_preset("cifar10_4_140", **TINY, num_labels=3)).eval()
    audio = CCNNForAudioClassification(CCNNConfig.from_preset("sc_raw_4_140", **TINY, base_resolution=[400])).eval()
    core = build_ccnn("smnist_4_140", **TINY, base_resolution=[64], causal=False).eval()
    backbone = CCNNModel(CCNNConfig.from_preset("smnist_4_140", **TINY, base_resolution=[64])).eval()
    with torch.no_grad():
        picture = torch.randn(1, 3, 20, 24, generator=g)
        canvas = torch.randn(1, 3, 32, 32, generator=g)
        canvas[..., 5:25, 3:27] = picture
        mask = torch.zeros(1, 32, 32)
        mask[:, 5:25, 3:27] = 1
        expected = image(pixel_values=picture).logits
        assert relative(image(pixel_values=canvas, attention_mask=mask).logits, expected) <= 1e-5
        clip = torch.randn(1, 1, 300, generator=g)
        x, mask = padded([clip[0]], 700)
        assert relative(audio(input_values=x, attention_mask=mask).logits, audio(input_values=clip).logits) <= 1e-5
        series = torch.randn(1, 1, 50, generator=g)
        x, mask = padded([series[0]], 90, offsets=[30])
        assert relative(core(x, attention_mask=mask), core(series)) <= 1e-5
        pooled = backbone(input_values=x, attention_mask=mask).pooler_output
        assert relative(pooled, backbone(input_values=series).pooler_output) <= 1e-5


def test_what_a_length_means_by_default():
    """1D models read duration, images and the flattened-image presets field of view; a duration
    model reads a series of any length at the base step, as ``resolution=base`` says."""
    assert build_ccnn("smnist_4_140", **TINY, base_resolution=[64]).reads_duration is False  # a flattened image
    assert build_ccnn("sc_mfcc_4_140", **TINY).reads_duration  # MFCC frames: a time series
    assert build_ccnn("sc_raw_4_140", **TINY, base_resolution=[400]).reads_duration  # rate-defined
    assert CCNN(data_dim=1, base_resolution=[64], **TINY).reads_duration
    assert not CCNN(data_dim=2, base_resolution=[16, 16], **TINY).reads_duration
    model = sequence_model("auto", causal=True).eval()
    x = torch.randn(2, 1, 100)
    with torch.no_grad():
        assert torch.equal(model(input_values=x).logits, model(input_values=x, resolution=[128]).logits)
        finer = model(input_values=x, resolution=[256]).logits  # resolution= still says otherwise
    assert relative(finer, model(input_values=x).logits) > 1e-3
    with pytest.raises(ValueError, match="length_semantics must be one of"):
        CCNNConfig.from_preset("smnist_4_140", length_semantics="time").validate_ccnn()


@pytest.mark.parametrize("semantics", ["duration", "field_of_view"])
def test_timestamps_0_to_L_minus_1_reproduce_the_regular_model_at_the_base_step(semantics):
    """Timestamps are in base samples: 0..L-1 (L != the base length) is the regular series at the
    base step, the plain call of a duration model and ``resolution=base`` for a field-of-view one."""
    model = sequence_model(semantics, causal=True).eval()
    x = torch.randn(2, 1, 100)
    regular = {} if semantics == "duration" else {"resolution": [128]}
    with torch.no_grad():
        expected = model(input_values=x, **regular).logits
        timed = model(input_values=x, timestamps=torch.arange(100.0).expand(2, -1)).logits
    assert relative(timed, expected) <= 1e-5


def test_released_sequence_models_declare_what_their_length_means():
    from ccnn_hf import available_releases, released_weights

    expected = {"smnist": False, "smnist784": False, "pmnist": False, "vowels_drop30": True}
    for name, duration in expected.items():
        if name not in available_releases():
            continue
        model = CCNNForSequenceClassification.from_pretrained(released_weights(name)).eval()
        assert model.ccnn.encoder.reads_duration is duration, name
    if "vowels_drop30" not in available_releases():
        return
    g = torch.Generator().manual_seed(0)
    series = [torch.randn(12, n, generator=g) for n in (29, 20, 7)]
    with torch.no_grad():
        short = model(**dict(zip(("input_values", "attention_mask"), padded(series, 29)))).logits
        long = model(**dict(zip(("input_values", "attention_mask"), padded(series, 60)))).logits
    assert relative(long, short) <= 1e-5  # the issue measured logit changes of up to 8.7 here


def test_bad_masks_keep_their_clear_errors_on_field_of_view_models():
    model = sequence_model("field_of_view", causal=True).eval()
    x = torch.randn(2, 1, 50)
    with pytest.raises(ValueError, match=r"attention_mask must have shape \[2, 50\]"):
        model(input_values=x, attention_mask=torch.ones(2, 49))
    with pytest.raises(ValueError, match=r"attention_mask marks no real position in row\(s\) 1"):
        model(input_values=x, attention_mask=torch.cat([torch.ones(1, 50), torch.zeros(1, 50)]))
    with pytest.raises(ValueError, match="timestamps must increase strictly"):
        model(input_values=x, timestamps=torch.tensor([[0.0, 2.0, 1.0] + list(range(3, 50))] * 2))


# -- kernels clipped to the input ------------------------------------------------------------------


def unclipped(monkeypatch) -> None:
    monkeypatch.setattr(SeparableContinuousConv, "reach", lambda self, scale, size: None)


@pytest.mark.parametrize(
    "preset, shape, resolution",
    [
        ("cifar10_4_140", (2, 3, 8, 8), (128, 128)),  # finer: 4x, kernel 129x129 on an 8x8 input
        ("cifar10_4_140", (2, 3, 6, 10), (128, 128)),  # the base step, kernel longer than the input
        ("smnist_4_140", (2, 1, 20), (512,)),  # causal, finer
        ("smnist_4_140", (2, 1, 20), (96,)),  # causal, coarser (folded) grid
    ],
)
@pytest.mark.parametrize("conv_impl", ["direct", "fft"])
def test_clipping_kernels_to_the_input_changes_no_output(monkeypatch, preset, shape, resolution, conv_impl):
    base = [128] * (len(shape) - 2)
    model = build_ccnn(preset, **TINY, base_resolution=base, conv_impl=conv_impl, mask_init=0.4).eval()  # wide
    x = torch.randn(*shape)
    with torch.no_grad():
        clipped = model(x, resolution=resolution)
        conv = model.stem.conv
        scale = tuple(r / b for r, b in zip(resolution, base))
        taps = conv.kernel(scale, shape[2:]).shape[1:]
        assert all(k <= (n if conv.causal else 2 * n - 1) for k, n in zip(taps, shape[2:]))
        unclipped(monkeypatch)
        full = model(x, resolution=resolution)
        assert conv.kernel(scale, shape[2:]).shape[1:] != taps  # the test compares two different kernels
    assert relative(clipped, full) <= 1e-5


def test_the_cost_of_a_claimed_resolution_follows_the_input():
    """cifar10_4_140 on an 8x8 input at resolution=(1024, 1024) took 71 s and 3.3 GB: its kernel
    was sampled on 1025 x 1025 positions. Now on at most the 15 x 15 that can touch the input."""
    model = build_ccnn("cifar10_4_140").eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 8, 8), resolution=(1024, 1024))
    assert torch.isfinite(logits).all()
    for conv in model.continuous_convs():
        plan = conv.kernel_plan((32.0, 32.0), (8, 8))
        assert plan.positions[0, 0].numel() <= 15 * 15


# -- the transformers flows ----------------------------------------------------------------------


def variable_length_examples(extractor: CCNNFeatureExtractor, count: int = 12):
    """Tones of two pitches (the labels), 40 to 150 samples long, as the extractor gives them."""
    rng = np.random.default_rng(0)
    examples = []
    for i in range(count):
        n, label = int(rng.integers(40, 150)), i % 2
        wave = np.sin(np.arange(n) * (0.3 if label else 1.2) + rng.uniform(0, 6)) + 0.1 * rng.standard_normal(n)
        features = extractor(wave.astype(np.float32))
        examples.append({"input_values": features["input_values"][0], "labels": label})
    return examples


@pytest.mark.parametrize("head", ["sequence", "audio"])
def test_trainer_with_dynamic_padding_trains_and_predicts_each_series_as_alone(tmp_path, head):
    """``CCNNFeatureExtractor`` + ``DataCollatorWithPadding`` + transformers' ``Trainer`` on series of
    different lengths: training is the same however far the batches are padded, and every
    prediction of ``Trainer.predict`` is the one the series gets alone."""
    import datasets
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    extractor = CCNNFeatureExtractor(sampling_rate=400, do_normalize=False)
    dataset = datasets.Dataset.from_list(variable_length_examples(extractor))
    torch.manual_seed(0)
    if head == "sequence":
        config = CCNNConfig.from_preset("smnist_4_140", **TINY, base_resolution=[100], dropout=0.0, num_labels=2)
        config.length_semantics = "duration"
        model = CCNNForSequenceClassification(config)
    else:
        config = CCNNConfig.from_preset("sc_raw_4_140", **TINY, base_resolution=[100], base_sampling_rate=400.0)
        config.num_labels = 2
        model = CCNNForAudioClassification(config)
    trained = []
    for multiple in (None, 256):  # pad to the longest of each batch, or far beyond it
        args = TrainingArguments(
            output_dir=str(tmp_path / str(multiple)),
            max_steps=3,
            per_device_train_batch_size=4,
            per_device_eval_batch_size=4,
            learning_rate=1e-2,
            optim="sgd",  # (Adam would turn the roundoff in the ~0 gradients of biases before BatchNorm into steps)
            report_to=[],
            save_strategy="no",
            use_cpu=True,
            seed=0,
        )
        collator = DataCollatorWithPadding(extractor, pad_to_multiple_of=multiple)
        trainer = Trainer(
            model=copy.deepcopy(model), args=args, train_dataset=dataset, eval_dataset=dataset, data_collator=collator
        )
        trainer.train()
        trained.append((trainer.model.eval(), trainer.predict(dataset).predictions))
    (first, predictions), (_, predictions_far) = trained
    assert np.abs(predictions_far - predictions).max() <= 1e-5 * np.abs(predictions).max()
    with torch.no_grad():
        alone = np.concatenate(
            [first(input_values=torch.as_tensor(e["input_values"])[None]).logits.numpy() for e in dataset]
        )
    assert predictions.shape == alone.shape
    assert np.abs(predictions - alone).max() <= 1e-5 * np.abs(alone).max()


def test_audio_pipeline_with_batch_size_gives_each_clip_its_own_prediction():
    """``pipeline("audio-classification", batch_size=4)`` on clips of mixed lengths: transformers'
    collate pads the extractor's ``input_values [1, L]`` and ``attention_mask`` of each clip to the
    batch's longest, and every clip gets the logits it gets alone."""
    from transformers import pipeline

    torch.manual_seed(0)
    config = CCNNConfig.from_preset("sc_raw_4_140", **TINY, base_resolution=[800], base_sampling_rate=8000.0)
    config.id2label = {i: f"digit {i}" for i in range(10)}
    config.label2id = {v: k for k, v in config.id2label.items()}
    model = CCNNForAudioClassification(config).eval()
    extractor = CCNNFeatureExtractor(sampling_rate=8000, mean=0.0, std=0.5)
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(n).astype(np.float32) for n in (700, 2100, 300, 1500, 900, 1200, 450)]
    classify = pipeline("audio-classification", model=model, feature_extractor=extractor, device="cpu")
    logits = dict(top_k=10, function_to_apply="none")  # the raw logits, every label
    alone = [classify(clip, **logits) for clip in clips]
    batched = classify(clips, batch_size=4, **logits)  # batches of 4 and 3 clips, padded to their longest
    assert len(batched) == len(clips)
    for one, together in zip(alone, batched):
        scores = {r["label"]: r["score"] for r in one}
        assert sorted(r["label"] for r in together) == sorted(scores)
        largest = max(abs(score) for score in scores.values())
        assert max(abs(r["score"] - scores[r["label"]]) for r in together) <= 1e-5 * largest
