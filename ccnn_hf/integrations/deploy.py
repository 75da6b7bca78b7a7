"""Deployment: a CCNN frozen at one input size, as plain tensors, for ``torch.export`` and ONNX.

A live CCNN samples its kernels from the generators at every forward, and how many taps it
samples (the mask crop) and which convolution path it takes depend on parameter values and
timings: shapes that export cannot trace. :func:`freeze` does all of that once, for one input
shape, and returns a module of fixed kernels (buffers), 1x1 mixers, norms and the head::

    frozen = ccnn_hf.freeze(model, (1, 3, 32, 32))
    program = torch.export.export(frozen, (torch.randn(1, 3, 32, 32),))
    torch.onnx.export(frozen, (torch.randn(1, 3, 32, 32),), "ccnn.onnx", dynamo=True)

The frozen module gives the eager model's outputs (logits of a classifier head, features of a
backbone) for inputs of that spatial size; any batch size works. Plain PyTorch: no transformers
or timm import.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn

from ..ccnn import CCNN
from ..continuous_conv import SeparableContinuousConv
from ..fftconv import depthwise_conv_direct, depthwise_conv_fft_official_1d

__all__ = ["freeze", "FrozenCCNN", "FrozenConv"]


class FrozenConv(nn.Module):
    """A :class:`SeparableContinuousConv` with its kernel sampled once: depthwise conv + 1x1 mixer."""

    def __init__(self, conv: SeparableContinuousConv, scale: Sequence[float], input_shape: Sequence[int]) -> None:
        super().__init__()
        with torch.no_grad():
            kernel = conv.kernel(tuple(scale), tuple(input_shape[2:]))
        self.register_buffer("kernel", kernel.detach().clone())
        self.register_buffer("bias", conv.bias.detach().clone())
        self.channel_mixer = copy.deepcopy(conv.channel_mixer)
        self.causal = conv.causal
        probe = torch.empty(tuple(input_shape), device="meta")
        # The official odd-length FFT is not a convolution: keep it where the model uses it (reference
        # mode with legacy_odd_fft); every other path is a convolution, computed directly here.
        self.path = "official_fft" if conv.conv_path(probe, kernel.shape) == "official_fft" else "direct"

    def forward(self, x: torch.Tensor, scale: Sequence[float] | None = None) -> torch.Tensor:
        conv = depthwise_conv_direct if self.path == "direct" else depthwise_conv_fft_official_1d
        return self.channel_mixer(conv(x, self.kernel, self.bias, self.causal))

    def extra_repr(self) -> str:
        return f"kernel={tuple(self.kernel.shape)}, causal={self.causal}, path={self.path!r}"


class FrozenCCNN(nn.Module):
    """A CCNN frozen at one input size (see :func:`freeze`); ``forward(x)`` takes ``[B, *input_shape[1:]]``."""

    def __init__(self, network: CCNN, classifier: nn.Module | None, output: str, input_shape: Sequence[int]) -> None:
        super().__init__()
        self.network, self.classifier, self.output = network, classifier, output
        self.input_shape = tuple(int(n) for n in input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.input_shape[1:]:
            frozen = ", ".join(map(str, self.input_shape[1:]))
            raise ValueError(
                f"this model was frozen for inputs of shape [B, {frozen}], "
                f"got {tuple(x.shape)}; freeze it again for this size"
            )
        features = self.network.forward_features(x)
        if self.output == "features":
            return features
        if self.classifier is None:
            return self.network.forward_head(features)
        return self.classifier(self.network.head.pool(features))


def _parts(model: nn.Module) -> tuple[CCNN, nn.Module | None, str]:
    """The CCNN backbone of ``model``, its external classifier (transformers heads) and what to return."""
    if isinstance(model, CCNN):
        return model, None, "logits"
    backbone = getattr(model, "ccnn", model)  # transformers heads wrap a CCNNModel
    encoder = getattr(backbone, "encoder", None)
    if not isinstance(encoder, CCNN):
        raise TypeError(f"freeze takes a CCNN or a ccnn_hf transformers model, got {type(model).__name__}")
    classifier = getattr(model, "classifier", None)
    return encoder, classifier, "features" if classifier is None else "logits"


def freeze(
    model: nn.Module,
    input_shape: Sequence[int],
    resolution: int | Sequence[int] | None = None,
    sampling_rate: float | None = None,
) -> FrozenCCNN:
    """Freeze ``model`` (a :class:`CCNN` or a ccnn_hf transformers model) for inputs of ``input_shape``.

    Every continuous conv's kernel is sampled (and cropped) once, as the model in eval mode would
    for such an input, and stored as a buffer; the result is a new module in eval mode (``model``
    is left alone) that ``torch.export.export`` and ``torch.onnx.export(..., dynamo=True)`` accept.

    Args:
        model: the model; classifier heads return logits, ``CCNNModel`` / ``num_classes=0`` features
            as the model does (pooled when the CCNN pools).
        input_shape: ``[B, C, *spatial]`` of the inputs to serve (the batch size is not fixed): the
            values the backbone reads (``pixel_values``, or ``input_values`` as ``[B, C, L]``; a
            sequence model with a token embedding takes the embedded tokens).
        resolution, sampling_rate: as in the model's forward, when the input size alone does not say it.
    """
    network, classifier, output = _parts(model)
    input_shape = tuple(int(n) for n in input_shape)
    if len(input_shape) != network.data_dim + 2 or input_shape[1] != network.in_chans or min(input_shape) < 1:
        raise ValueError(
            f"input_shape must be [B, {network.in_chans}, <{network.data_dim} sizes>] for this model, "
            f"got {list(input_shape)}"
        )
    network = copy.deepcopy(network).eval()
    classifier = copy.deepcopy(classifier).eval() if classifier is not None else None
    network.check_finite = False  # a data-dependent check has no place in an exported graph
    probe = torch.empty(input_shape, device="meta")
    scale = network.input_scale(probe, resolution, sampling_rate)
    for name, module in list(network.named_modules()):
        if isinstance(module, SeparableContinuousConv):
            parent, _, attribute = name.rpartition(".")
            conv_scale = scale if scale is not None else module.input_scale(probe)
            setattr(
                network.get_submodule(parent) if parent else network,
                attribute,
                FrozenConv(module, conv_scale, input_shape),
            )
    for parameter in [*network.parameters(), *(classifier.parameters() if classifier is not None else ())]:
        parameter.requires_grad_(False)
    return FrozenCCNN(network, classifier, output, input_shape).eval()
