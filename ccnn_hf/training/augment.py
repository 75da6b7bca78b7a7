"""``ccnn-train --augment``: the CIFAR recipe's random crop and horizontal flip, done on the batch.

The official CCNN recipe for CIFAR-10 pads each image by 4 pixels with mirrored edges
(torchvision's ``padding_mode="symmetric"``), crops a random 32x32 window and flips half of the
images. Here that is one gather on the device for the whole batch: no per-image Python work, the
same cost on any accelerator, and the padding scales with the image (1/8 of its side), so
multi-resolution batches get the same relative shift.

The draws come from a generator seeded by the run's seed and the optimiser step, so a resumed run
sees exactly the crops and flips an uninterrupted one would have seen.
"""

from __future__ import annotations

import torch

__all__ = ["PAD_FRACTION", "random_crop_flip"]

PAD_FRACTION = 1 / 8  # 4 pixels at 32x32, as the official CIFAR-10 recipe


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
    generator = torch.Generator(device=x.device).manual_seed(seed * 1_000_003 + step)
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
