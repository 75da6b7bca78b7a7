"""``ccnn-train --augment``: random crop of the mirror-padded image and horizontal flip, on the batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ccnn_hf.training.augment import random_crop_flip


def _candidates(image: np.ndarray, pad: int) -> list[np.ndarray]:
    """Every crop (and its mirror image) of ``image`` [C, H, W] padded symmetrically by ``pad``."""
    _, height, width = image.shape
    padded = np.pad(image, ((0, 0), (pad, pad), (pad, pad)), mode="symmetric")  # torchvision's "symmetric"
    crops = [padded[:, y : y + height, x : x + width] for y in range(2 * pad + 1) for x in range(2 * pad + 1)]
    return crops + [c[:, :, ::-1] for c in crops]


def test_each_image_is_a_crop_of_its_symmetric_padding_or_its_mirror_image():
    x = torch.randn(16, 3, 32, 32)
    out = random_crop_flip(x, seed=0, step=0)
    assert out.shape == x.shape and out.dtype == x.dtype
    for image, augmented in zip(x.numpy(), out.numpy()):
        assert any(np.array_equal(augmented, c) for c in _candidates(image, 4))


def test_padding_scales_with_the_image_side():
    x = torch.randn(64, 1, 16, 16)
    out = random_crop_flip(x, seed=1, step=3)
    for image, augmented in zip(x.numpy(), out.numpy()):
        assert any(np.array_equal(augmented, c) for c in _candidates(image, 2))


def test_draws_cover_every_shift_and_flip_half_of_the_images():
    # one distinct value per column and row: the output's first row and column reveal the shift and the flip
    height = width = 32
    grid = (torch.arange(height)[:, None] * 100 + torch.arange(width)[None, :]).float()
    x = grid.expand(4096, 1, height, width)
    out = random_crop_flip(x, seed=0, step=0)
    first_col = out[:, 0, :, 0] // 100  # source row of each output row
    shift_y = first_col[:, 4] - 4  # output row 4 reads source row 4 + shift (no mirroring there)
    flipped = out[:, 0, 4, 16] < out[:, 0, 4, 15]  # columns far from the mirrored edges
    assert set(shift_y.long().tolist()) == set(range(-4, 5))
    assert 0.45 < flipped.float().mean().item() < 0.55


def test_draws_are_seeded_by_seed_and_step():
    x = torch.randn(32, 3, 8, 8)
    same = random_crop_flip(x, seed=2, step=5)
    assert torch.equal(same, random_crop_flip(x, seed=2, step=5))
    assert not torch.equal(same, random_crop_flip(x, seed=2, step=6))
    assert not torch.equal(same, random_crop_flip(x, seed=3, step=5))


def test_refuses_anything_but_image_batches():
    with pytest.raises(ValueError, match=r"\[batch, channels, height, width\].*\(3, 32, 32\)"):
        random_crop_flip(torch.randn(3, 32, 32), seed=0, step=0)
