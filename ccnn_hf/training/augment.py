"""``ccnn-train --augment``: images get the CIFAR recipe's random crop and horizontal flip; time
series get random point dropout. Both are done on the batch.

The official CCNN recipe for CIFAR-10 pads each image by 4 pixels with mirrored edges
(torchvision's ``padding_mode="symmetric"``), crops a random 32x32 window and flips half of the
images. Here that is one gather on the device for the whole batch: no per-image Python work, the
same cost on any accelerator, and the padding scales with the image (1/8 of its side), so
multi-resolution batches get the same relative shift.

Time series (1D ``sequence`` data) lose a random share of their observed time points instead: each
series draws a rate ``u`` uniformly from ``[0, POINT_DROP_MAX]`` and every observed time point (all
channels together) is dropped with probability ``u``; at least one point stays. The dropped points
become unobserved in the batch's ``observed_mask`` and their values zero, exactly the form of the
irregular-sampling protocol of :mod:`ccnn_hf.data.aeon_archive`, so a model learns from many
partial views of each series of a small training set.

The draws come from a generator seeded by the run's seed and the optimiser step, so a resumed run
sees exactly the augmented batches an uninterrupted one would have seen.
"""

from __future__ import annotations

import torch

__all__ = ["PAD_FRACTION", "POINT_DROP_MAX", "augment_batch", "random_crop_flip", "random_point_drop"]

PAD_FRACTION = 1 / 8  # 4 pixels at 32x32, as the official CIFAR-10 recipe
POINT_DROP_MAX = 0.3  # the largest share of observed time points a training series loses


def _generator(device: torch.device, seed: int, step: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + step)


def _mirror(index: torch.Tensor, size: int) -> torch.Tensor:
    """Map positions in ``[-size, 2 * size)`` into ``[0, size)`` by mirroring at the edges, the edge
    pixel repeated (symmetric padding: position -1 reads 0, position ``size`` reads ``size - 1``)."""
    index = torch.where(index < 0, -index - 1, index)
    return torch.where(index >= size, 2 * size - 1 - index, index)


def random_crop_flip(x: torch.Tensor, seed: int, step: int) -> torch.Tensor:
    """Images ``[batch, channels, height, width]`` shifted by a random crop of their mirror-padded
    version (padding :data:`PAD_FRACTION` of each side) and flipped left-right with probability 1/2,
    independently per image; draws seeded by ``(seed, step)``."""
    if x.dim() != 4:
        raise ValueError(f"random_crop_flip expects images [batch, channels, height, width], got {tuple(x.shape)}")
    batch, _, height, width = x.shape
    generator = _generator(x.device, seed, step)
    pad_h, pad_w = max(1, round(height * PAD_FRACTION)), max(1, round(width * PAD_FRACTION))
    shift_y = torch.randint(-pad_h, pad_h + 1, (batch, 1), generator=generator, device=x.device)
    shift_x = torch.randint(-pad_w, pad_w + 1, (batch, 1), generator=generator, device=x.device)
    flip = torch.rand(batch, 1, generator=generator, device=x.device) < 0.5
    rows = _mirror(torch.arange(height, device=x.device) + shift_y, height)  # [batch, height]
    cols = _mirror(torch.arange(width, device=x.device) + shift_x, width)  # [batch, width]
    cols = torch.where(flip, cols.flip(1), cols)
    sample = torch.arange(batch, device=x.device)[:, None, None]
    # [batch, height, width, channels] from advanced indexing, back to channels first
    return x.permute(0, 2, 3, 1)[sample, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


def random_point_drop(
    x: torch.Tensor, masks: dict[str, torch.Tensor], seed: int, step: int
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Series ``[batch, channels, length]`` and their masks (``attention_mask`` ``[batch, length]``
    and/or ``observed_mask`` ``[batch, length]`` or ``[batch, channels, length]``, either absent)
    with a random share of each series' observed time points dropped (see the module docstring);
    returns the new values and masks (``observed_mask`` always present). Draws seeded by ``(seed, step)``."""
    if x.dim() != 3:
        raise ValueError(f"random_point_drop expects series [batch, channels, length], got {tuple(x.shape)}")
    batch, _, length = x.shape
    observed = masks.get("observed_mask")
    points = torch.ones(batch, length, dtype=torch.bool, device=x.device)  # time points with any observation
    if observed is not None:
        points = observed.bool() if observed.dim() == 2 else observed.bool().any(dim=1)
    if "attention_mask" in masks:
        points = points & masks["attention_mask"].bool()
    generator = _generator(x.device, seed, step)
    rate = torch.rand(batch, 1, generator=generator, device=x.device) * POINT_DROP_MAX
    drop = (torch.rand(batch, length, generator=generator, device=x.device) < rate) & points
    drop &= ~(drop == points).all(dim=1, keepdim=True)  # a series that would lose every point keeps them all
    keep = ~drop
    if observed is None:
        new_observed = points & keep
    else:
        new_observed = observed.bool() & (keep if observed.dim() == 2 else keep[:, None])
    return x * keep[:, None].to(x.dtype), {**masks, "observed_mask": new_observed}


def augment_batch(
    x: torch.Tensor, masks: dict[str, torch.Tensor], seed: int, step: int
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The training batch augmented as its data calls for: images ``[B, C, H, W]`` by
    :func:`random_crop_flip` (masks unchanged), series ``[B, C, L]`` by :func:`random_point_drop`."""
    if x.dim() == 4:
        return random_crop_flip(x, seed, step), masks
    return random_point_drop(x, masks, seed, step)
