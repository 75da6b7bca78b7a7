"""Pictures of what a CCNN learned: the masked depthwise kernels of every continuous conv.

Each row of the figure is one :class:`~ccnn_hf.continuous_conv.SeparableContinuousConv` (stem
first), each column one of its first channels, sampled on the base grid (``scale = 1``) with the
Gaussian mask applied and cropped, exactly the kernel the layer convolves base-resolution inputs
with. 1D kernels are drawn as curves, 2D kernels as images on a symmetric colour scale, 3D kernels
as their central slice along the first axis. matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..continuous_conv import SeparableContinuousConv

__all__ = ["continuous_convs", "plot_kernels"]


def continuous_convs(model: nn.Module) -> list[tuple[str, SeparableContinuousConv]]:
    """``(name, module)`` of every continuous conv in ``model`` (core, timm or transformers), in order."""
    return [(name, module) for name, module in model.named_modules() if isinstance(module, SeparableContinuousConv)]


def _short_name(name: str) -> str:
    """``ccnn.encoder.blocks.0.conv`` -> ``blocks.0.conv`` (the wrappers' prefixes say nothing)."""
    parts = name.split(".")
    starts = [i for i, part in enumerate(parts) if part in ("stem", "blocks")]
    return ".".join(parts[starts[0] :]) if starts else (name or "conv")


@torch.no_grad()
def _base_kernel(conv: SeparableContinuousConv) -> torch.Tensor:
    """The masked kernel ``[C, *K]`` on the base grid, without changing the module's mode."""
    was_training = conv.training
    conv.eval()
    try:
        return conv.kernel().detach().float().cpu()
    finally:
        conv.train(was_training)


def plot_kernels(model: nn.Module, path: str | Path | None = None, max_channels: int = 8, dpi: int = 110):
    """Draw the masked kernels of each continuous conv of ``model`` at its base resolution.

    Args:
        model: a :class:`ccnn_hf.CCNN`, a timm ``ccnn_*`` model or a transformers CCNN model.
        path: where to save the figure (PNG, ...); None only returns it.
        max_channels: kernels drawn per layer (its first channels).
        dpi: resolution of the saved file.

    Returns:
        The matplotlib ``Figure``, one row per layer and ``min(max_channels, channels)`` columns.
    """
    if not isinstance(max_channels, int) or isinstance(max_channels, bool) or max_channels < 1:
        raise ValueError(f"max_channels must be an integer >= 1, got {max_channels!r}")
    layers = continuous_convs(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no continuous convolution (SeparableContinuousConv) to plot")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    columns = min(max_channels, max(conv.in_channels for _, conv in layers))
    figure, axes = plt.subplots(len(layers), columns, figsize=(1.6 * columns, 1.5 * len(layers)), squeeze=False)
    for row, (name, conv) in enumerate(layers):
        kernel = _base_kernel(conv)
        if kernel.ndim == 4:  # 3D: the central slice along the first axis
            kernel = kernel[:, kernel.shape[1] // 2]
        for column in range(columns):
            ax = axes[row, column]
            ax.set_xticks([])
            ax.set_yticks([])
            if column >= kernel.shape[0]:
                ax.axis("off")
                continue
            values = kernel[column].numpy()
            if values.ndim == 1:
                ax.plot(values, linewidth=1.0)  # against the tap index (causal: the last tap is "now")
                ax.axhline(0.0, color="0.7", linewidth=0.5)
            else:
                limit = float(abs(values).max()) or 1.0
                ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
            if column == 0:
                ax.set_ylabel(_short_name(name), fontsize=7)
            if row == 0:
                ax.set_title(f"channel {column}", fontsize=7)
    figure.suptitle("masked kernels at the base resolution", fontsize=9)
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=dpi)
    return figure
