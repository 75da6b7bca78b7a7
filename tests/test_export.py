"""Deployment: ``ccnn_hf.freeze`` -> ``torch.export`` and ONNX programs that reproduce the eager logits."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from ccnn_hf import (
    CCNNConfig,
    CCNNForAudioClassification,
    CCNNForImageClassification,
    CCNNForSequenceClassification,
    CCNNModel,
    FrozenCCNN,
    available_releases,
    build_ccnn,
    freeze,
    released_weights,
)

TINY = dict(hidden_channels=8, num_blocks=2, kernel_hidden=8)


def cases() -> dict[str, tuple]:
    """name -> (model, input, forward keyword or None for a plain CCNN)."""
    torch.manual_seed(0)
    return {
        "image": (
            CCNNForImageClassification(CCNNConfig.from_preset("cifar10_4_140", **TINY)),
            torch.randn(2, 3, 24, 20),
            "pixel_values",
        ),
        "sequence": (
            CCNNForSequenceClassification(CCNNConfig.from_preset("smnist_4_140", **TINY)),
            torch.randn(2, 1, 100),
            "input_values",
        ),
        "audio": (
            CCNNForAudioClassification(
                CCNNConfig.from_preset("sc_raw_4_140", **TINY, base_resolution=[4000], base_sampling_rate=4000)
            ),
            torch.randn(2, 1, 3000),
            "input_values",
        ),
        "core": (build_ccnn("cifar10_4_140", hidden=8, blocks=2, kernel_width=8), torch.randn(2, 3, 40, 40), None),
        "reference": (
            build_ccnn(
                "smnist_4_140", hidden=8, blocks=2, kernel_width=8, mode="reference", use_fft=True, legacy_odd_fft=True
            ),
            torch.randn(2, 1, 99),
            None,
        ),
    }


def eager(model, x: torch.Tensor, keyword: str | None) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(**{keyword: x}).logits if keyword else model.eval()(x)


@pytest.mark.parametrize("name", ["image", "sequence", "audio", "core", "reference"])
def test_frozen_model_reproduces_eager_and_exports_with_any_batch(name):
    model, x, keyword = cases()[name]
    expected = eager(model, x, keyword)
    frozen = freeze(model, x.shape)
    assert isinstance(frozen, FrozenCCNN) and not frozen.training
    assert not any(p.requires_grad for p in frozen.parameters())
    with torch.no_grad():
        torch.testing.assert_close(frozen(x), expected, rtol=1e-5, atol=1e-5)
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(frozen, (x,), dynamic_shapes={"x": {0: batch}})
    torch.testing.assert_close(program.module()(x), expected, rtol=1e-5, atol=1e-5)
    more = torch.cat([x, x[:1]])
    torch.testing.assert_close(program.module()(more)[:2], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime", "onnxscript")),
    reason="ONNX export needs onnx, onnxruntime and onnxscript (the [dev] extra)",
)
@pytest.mark.parametrize("name", ["image", "sequence"])
def test_onnx_export_runs_in_onnxruntime(name, tmp_path):
    import onnxruntime

    model, x, keyword = cases()[name]
    expected = eager(model, x, keyword)
    path = tmp_path / "ccnn.onnx"
    torch.onnx.export(freeze(model, x.shape), (x,), str(path), dynamo=True, input_names=["x"], verbose=False)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"x": x.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(logits), expected, rtol=1e-5, atol=1e-5)


def test_freeze_keeps_the_model_and_honours_resolution():
    model, x, keyword = cases()["image"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    frozen = freeze(model, x.shape, resolution=(48, 40))  # a coarse view of a finer field
    assert model.training and all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    with torch.no_grad():
        expected = model.eval()(pixel_values=x, resolution=(48, 40)).logits
        torch.testing.assert_close(frozen(x), expected, rtol=1e-5, atol=1e-5)
    features = freeze(CCNNModel(model.config), x.shape)
    with torch.no_grad():
        assert features(x).shape == (2, 8, 24, 20)


def test_freeze_names_what_is_wrong():
    model, x, _ = cases()["image"]
    frozen = freeze(model, x.shape)
    with pytest.raises(ValueError, match=r"frozen for inputs of shape \[B, 3, 24, 20\].*freeze it again"):
        frozen(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"input_shape must be \[B, 3, <2 sizes>\]"):
        freeze(model, (2, 1, 24, 20))
    with pytest.raises(TypeError, match="freeze takes a CCNN or a ccnn_hf transformers model"):
        freeze(torch.nn.Linear(2, 2), (1, 2))


@pytest.mark.skipif("mnist2d" not in available_releases(), reason="no released weights in this installation")
def test_released_model_frozen_at_28x28_exports():
    model = CCNNForImageClassification.from_pretrained(released_weights("mnist2d")).eval()
    x = torch.randn(2, 1, 28, 28)
    program = torch.export.export(freeze(model, x.shape), (x,))
    torch.testing.assert_close(program.module()(x), eager(model, x, "pixel_values"), rtol=1e-5, atol=1e-5)
