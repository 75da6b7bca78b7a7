"""BatchNorm statistics for the resolution a model is used at (FixRes; Touvron et al., NeurIPS 2019).

A CCNN trained at one resolution runs at any other with the same continuous kernels, but its
BatchNorm running statistics describe the activations of training-resolution inputs. Finer inputs
carry detail that the training images lacked, so the activations' variances move and eval mode
mis-scales every layer a little (measured on the 14x14 MNIST release: its model card).
:func:`recalibrate_batch_norm` re-estimates the statistics from unlabelled inputs at the new
resolution, with no gradient step and no labels: a few thousand samples, seconds on a CPU.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["batch_norms", "recalibrate_batch_norm"]


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every BatchNorm layer of ``model`` (1D, 2D, 3D and synchronised ones), in order."""
    return [module for module in model.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)]


def _check_inputs(inputs: torch.Tensor, per_sample: dict[str, torch.Tensor]) -> None:
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"inputs must be a tensor [N, C, ...], not {type(inputs).__name__}")
    if inputs.ndim < 2:
        raise ValueError(f"inputs must be a batch [N, ...] of samples, got shape {tuple(inputs.shape)}")
    if len(inputs) < 2:
        raise ValueError(f"BatchNorm statistics need at least 2 samples, got {len(inputs)}")
    if not inputs.is_floating_point():
        raise TypeError(f"inputs must be floating point (normalised as in training), not {inputs.dtype}")
    if not torch.isfinite(inputs).all():
        raise ValueError("inputs hold NaN or inf: they would turn every BatchNorm statistic into NaN")
    for name, tensor in per_sample.items():
        if len(tensor) != len(inputs):
            raise ValueError(f"{name} has {len(tensor)} samples, inputs have {len(inputs)}")


def _batches(count: int, batch_size: int) -> list[slice]:
    """Consecutive slices of ``batch_size`` over ``count`` samples; a last batch of one sample joins
    the one before it (BatchNorm cannot take statistics over a single value per channel)."""
    starts = list(range(0, count, batch_size))
    if count - starts[-1] == 1 and len(starts) > 1:
        starts.pop()
    return [slice(start, end) for start, end in zip(starts, starts[1:] + [count])]


@torch.no_grad()
def recalibrate_batch_norm(model: nn.Module, inputs: torch.Tensor, batch_size: int = 128, **forward_kwargs) -> int:
    """Re-estimate the running statistics of every BatchNorm in ``model`` (in place) from ``inputs``,
    unlabelled samples ``[N, C, ...]`` (or ``[N, L]`` waveforms) at the resolution the model will be
    used at, normalised as its training data were; returns ``N``.

    The statistics are reset and then averaged with equal weight over the batches of
    ``batch_size`` (:func:`torch.optim.swa_utils.update_bn`'s rule; a last batch of one sample
    joins the one before), every module in training mode. Afterwards each module's own mode, the
    layers' momenta and the global random generators (dropout draws) are as they were; if a
    forward fails, the statistics are too. ``forward_kwargs`` go to every forward: tensors with a
    first axis are per-sample (``attention_mask=...``, ``observed_mask=...``) and sliced with the
    inputs, anything else (``sampling_rate=8000`` for audio at a new rate, ``resolution=...``) is
    passed unchanged. Works on the core :class:`~ccnn_hf.CCNN`, timm's and transformers' CCNN
    models and any other module called as ``model(inputs, **forward_kwargs)``.

    Use it on a model run at a resolution it was not trained at: on the real 28x28 MNIST test set
    it brings the 14x14 MNIST release level with resizing the digits to 14x14
    (``benchmarks/eval_mnist_test.py``; figures on the release's card). Keep a copy for the training
    resolution: statistics estimated at 28x28 fit 14x14 inputs less well.
    """
    norms = batch_norms(model)
    if not norms:
        raise ValueError(
            f"{type(model).__name__} has no BatchNorm layer: its normalisation keeps no running "
            "statistics, so there is nothing to recalibrate"
        )
    per_sample = {k: v for k, v in forward_kwargs.items() if isinstance(v, torch.Tensor) and v.ndim > 0}
    constant = {k: v for k, v in forward_kwargs.items() if k not in per_sample}
    _check_inputs(inputs, per_sample)
    if batch_size < 2:
        raise ValueError(f"batch_size must be at least 2 for batch statistics, got {batch_size}")
    device = next(model.parameters()).device
    saved = {norm: (norm.momentum, {k: v.clone() for k, v in norm.state_dict().items()}) for norm in norms}
    modes = {module: module.training for module in model.modules()}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        try:
            for norm in norms:
                norm.reset_running_stats()
                norm.momentum = None  # cumulative average: every batch counts the same
            model.train()
            for chosen in _batches(len(inputs), batch_size):
                batch = {k: v[chosen].to(device) for k, v in per_sample.items()}
                model(inputs[chosen].to(device), **batch, **constant)
        except BaseException:
            for norm, (_, state) in saved.items():
                norm.load_state_dict(state)
            raise
        finally:
            for norm, (momentum, _) in saved.items():
                norm.momentum = momentum
            for module, training in modes.items():
                module.training = training
    return len(inputs)
