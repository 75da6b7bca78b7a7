"""``ccnn-train --compile``: torch.compile for the training step, CCNN-aware."""

from __future__ import annotations

import os

from typing import Callable

import torch
from torch import nn

from ..ccnn import CCNN
from ..continuous_conv import SeparableContinuousConv
from ..continuous_kernel import refresh_kernel_plans
from .model import l2_norm_penalty

__all__ = ["COMPILE_ON_CPU", "compiles_on", "compile_for_training", "regulariser"]

COMPILE_ON_CPU = "CCNN_HF_COMPILE_CPU"  # set to 1: ccnn-train --compile compiles on the CPU too


def compiles_on(device_type: str) -> bool:
    """Whether ``ccnn-train --compile`` compiles on this device: on accelerators; on the CPU, where
    compiled CCNN steps measured slower than eager ones (benchmarks/results/training.md), only with
    ``CCNN_HF_COMPILE_CPU=1``."""
    return device_type != "cpu" or os.environ.get(COMPILE_ON_CPU) == "1"


def compile_for_training(model: nn.Module, device_type: str) -> str:
    """Compile ``model`` in place (its state dict keeps its keys); returns what was compiled.

    A CCNN compiles its stem and each block as one full graph each (``fullgraph=True``, static
    shapes). Its kernels are sampled on their whole grid (:meth:`CCNN.set_static_kernel_shapes`):
    a crop would follow the learned mask widths and recompile the graphs at every change, up
    to torch's recompile limit and a hard failure. :meth:`CCNN.encode` stays eager and makes the
    kernel plans for new input sizes (evaluation at other resolutions), which a graph cannot do.
    Any other model (a timm baseline) is compiled whole. On CUDA, ``mode="reduce-overhead"`` adds
    CUDA graphs. The graphs serve the training steps: ccnn-train adapts the BatchNorm statistics
    and evaluates eagerly (``torch.compiler.set_stance("force_eager")``).
    """
    mode = "reduce-overhead" if device_type == "cuda" else None
    backbones = [m for m in model.modules() if isinstance(m, CCNN)]
    if not backbones:
        model.compile(dynamic=False, mode=mode)
        return "whole model"
    for backbone in backbones:
        backbone.set_static_kernel_shapes()  # else every change of a mask crop would recompile
        for part in (backbone.stem, *backbone.blocks):
            part.compile(fullgraph=True, dynamic=False, mode=mode)
    return f"{sum(1 + len(b.blocks) for b in backbones)} CCNN layers (stem and blocks), one graph each"


def regulariser(model: nn.Module, compiled: bool) -> Callable[[], torch.Tensor]:
    """The official L2-norm penalty of ``model`` (:func:`l2_norm_penalty`) as a function of no
    arguments, compiled into one graph when ``compiled`` (after :func:`compile_for_training`).

    Eagerly the penalty resamples every kernel and takes one norm per parameter: about 2 200
    small operations forward and backward for ``cifar10_4_140``, each its own kernel launch on a
    GPU, while the compiled model's whole step is a few graph replays. The compiled graph is
    wrapped in a host-side check that makes the base-resolution kernel plans it needs."""

    def penalty() -> torch.Tensor:
        return l2_norm_penalty(model)

    if not compiled:
        return penalty
    graph = torch.compile(penalty, fullgraph=True, dynamic=False)
    convs = [m for m in model.modules() if isinstance(m, SeparableContinuousConv)]

    def planned_penalty() -> torch.Tensor:
        # The graph samples every kernel on its base grid, whose plan a graph cannot make: make it
        # here (host only) when missing, e.g. when --train_resolutions drew another size for the
        # first step, or a resumed run's first step.
        stale = [c for c in convs if not c.plan_is_current((1.0,) * c.data_dim)]
        if stale:
            refresh_kernel_plans(stale, [(1.0,) * stale[0].data_dim])
        return graph()

    return planned_penalty
