"""BatchNorm statistics for the resolution a model is used at (FixRes; Touvron et al., NeurIPS 2019).

A CCNN trained at one resolution runs at any other with the same continuous kernels, but its
BatchNorm running statistics describe the activations of training-resolution inputs. Finer inputs
carry detail that the training images lacked, so the activations' variances move (the stem of the
14x14 MNIST release sees 1.42x the variance on 28x28 digits) and eval mode mis-scales every layer
a little. :func:`recalibrate_batch_norm` re-estimates the statistics from unlabelled inputs at the
new resolution, with no gradient step and no labels: a few thousand samples, seconds on a CPU.
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
    if inputs.ndim < 3:
        raise ValueError(
            f"inputs must be a batch [N, C, ...] with at least one spatial dimension, got shape {tuple(inputs.shape)}"
        )
    if len(inputs) < 2:
        raise ValueError(f"BatchNorm statistics need at least 2 samples, got {len(inputs)}")
    if not inputs.is_floating_point():
        raise TypeError(f"inputs must be floating point (normalised as in training), not {inputs.dtype}")
    if not torch.isfinite(inputs).all():
        raise ValueError("inputs hold NaN or inf: they would turn every BatchNorm statistic into NaN")
    for name, tensor in per_sample.items():
        if len(tensor) != len(inputs):
            raise ValueError(f"{name} has {len(tensor)} samples, inputs have {len(inputs)}")


@torch.no_grad()
def recalibrate_batch_norm(
    model: nn.Module, inputs: torch.Tensor, batch_size: int = 128, **per_sample: torch.Tensor
) -> int:
    """Re-estimate the running statistics of every BatchNorm in ``model`` (in place) from ``inputs``,
    unlabelled samples ``[N, C, ...]`` at the resolution the model will be used at, normalised as
    its training data were; returns ``N``.

    The statistics are reset and then averaged with equal weight over the batches of
    ``batch_size`` (:func:`torch.optim.swa_utils.update_bn`'s rule), in training mode; the model's
    mode, the layers' momenta and the global random generators (dropout draws) are left as they
    were. ``per_sample`` tensors (``attention_mask=...``, ``observed_mask=...``) are sliced with
    the inputs and passed to each forward as keywords. Works on the core :class:`~ccnn_hf.CCNN`,
    timm's and transformers' CCNN models and any other module called as ``model(inputs)``.

    Use it on a model run at a resolution it was not trained at: the 14x14 MNIST release on the
    real 28x28 test set goes from 95.6 % with its training statistics to 97.1 % with statistics
    from 2 048 unlabelled 28x28 training digits, level with resizing the digits to 14x14 (97.0 %;
    ``benchmarks/eval_mnist_test.py``). Keep a copy for the training resolution: statistics
    estimated at 28x28 fit 14x14 inputs less well.
    """
    norms = batch_norms(model)
    if not norms:
        raise ValueError(
            f"{type(model).__name__} has no BatchNorm layer: its normalisation keeps no running "
            "statistics, so there is nothing to recalibrate"
        )
    _check_inputs(inputs, per_sample)
    if batch_size < 2:
        raise ValueError(f"batch_size must be at least 2 for batch statistics, got {batch_size}")
    device = next(model.parameters()).device
    momenta = {norm: norm.momentum for norm in norms}
    was_training = model.training
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        try:
            for norm in norms:
                norm.reset_running_stats()
                norm.momentum = None  # cumulative average: every batch counts the same
            model.train()
            for start in range(0, len(inputs), batch_size):
                chosen = slice(start, start + batch_size)
                model(inputs[chosen].to(device), **{k: v[chosen].to(device) for k, v in per_sample.items()})
        finally:
            for norm, momentum in momenta.items():
                norm.momentum = momentum
            model.train(was_training)
    return len(inputs)
