"""The masks of a batch, as the extra keyword arguments of a model's ``forward``.

A split of padded or partially observed sequences (``aeon:NAME``, ``--drop_rate``) carries an
``attention_mask`` and/or an ``observed_mask`` (:class:`~ccnn_hf.data.ArrayDataset`). The training
loop draws ``(x, y, index)`` batches; :func:`batch_masks` looks the masks of those samples up, so
the model sees exactly which values are real. A split without masks gives no extra arguments, and
the model runs as it always did.
"""

from __future__ import annotations

import torch

from ..data import ArrayDataset

__all__ = ["batch_masks", "split_has_masks"]


def batch_masks(split: ArrayDataset, index: torch.Tensor | slice, device: torch.device) -> dict[str, torch.Tensor]:
    """``{"attention_mask": ..., "observed_mask": ...}`` (those the split has) for the samples at
    ``index`` (dataset indices, on any device, or a slice), on ``device``."""
    if isinstance(index, torch.Tensor):
        index = index.cpu()
    return {name: mask[index].to(device) for name, mask in split.masks().items()}


def split_has_masks(*splits: ArrayDataset) -> bool:
    """Whether any of ``splits`` has a padding or observation mask."""
    return any(split.masks() for split in splits)
