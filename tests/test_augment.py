"""``ccnn-train --augment``: random crop of the mirror-padded image and horizontal flip, or random point
dropout of time series, on the batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ccnn_hf.training.augment import POINT_DROP_MAX, random_crop_flip, random_point_drop


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


# -- time series: random point dropout ------------------------------------------------------------


def _series(batch: int = 64, channels: int = 3, length: int = 50) -> torch.Tensor:
    return torch.randn(batch, channels, length) + 5  # no exact zeros: a zero reveals a dropped value


def test_point_dropout_only_removes_observed_points_and_zeroes_their_values():
    x = _series()
    attention = torch.ones(64, 50, dtype=torch.bool)
    attention[:, 40:] = False  # padding: never observed, never "dropped"
    observed = torch.rand(64, 50) > 0.3
    masks = {"attention_mask": attention, "observed_mask": observed}
    out, masks = random_point_drop(x * observed[:, None], masks, 0, 0)
    new = masks["observed_mask"]
    assert torch.equal(masks["attention_mask"], attention)
    dropped = observed & ~new
    assert not (new & ~observed).any()  # nothing becomes observed
    assert dropped.any() and not (dropped & ~attention).any()  # only real points are dropped
    assert (out.permute(0, 2, 1)[dropped] == 0).all()  # every channel of a dropped point is zero
    assert torch.equal(out.permute(0, 2, 1)[new], x.permute(0, 2, 1)[new])  # kept values unchanged


def test_point_dropout_rates_spread_over_zero_to_the_maximum_and_every_series_keeps_a_point():
    x = _series(batch=2000, channels=1, length=2000)
    _, masks = random_point_drop(x, {}, seed=0, step=1)
    shares = 1 - masks["observed_mask"].float().mean(dim=1)  # complete data: the mask is created
    assert shares.min() < 0.02 and POINT_DROP_MAX - 0.05 < shares.max() <= POINT_DROP_MAX + 0.05
    assert abs(shares.mean().item() - POINT_DROP_MAX / 2) < 0.01
    one_point = torch.zeros(8, 30, dtype=torch.bool)
    one_point[:, 7] = True
    for step in range(20):
        _, masks = random_point_drop(_series(8, 2, 30), {"observed_mask": one_point}, 0, step)
        assert masks["observed_mask"].sum(dim=1).min() >= 1


def test_point_dropout_keeps_per_channel_masks_and_is_seeded_by_seed_and_step():
    x = _series()
    observed = torch.rand(64, 3, 50) > 0.2
    out, masks = random_point_drop(x, {"observed_mask": observed}, seed=4, step=2)
    assert masks["observed_mask"].shape == (64, 3, 50)
    assert not (masks["observed_mask"] & ~observed).any()
    again, same = random_point_drop(x, {"observed_mask": observed}, seed=4, step=2)
    assert torch.equal(out, again) and torch.equal(masks["observed_mask"], same["observed_mask"])
    assert not torch.equal(random_point_drop(x, {}, seed=4, step=3)[0], out)
    assert not torch.equal(random_point_drop(x, {}, seed=5, step=2)[0], out)


def test_point_dropout_refuses_anything_but_series_batches():
    with pytest.raises(ValueError, match=r"\[batch, channels, length\].*\(3, 50\)"):
        random_point_drop(torch.randn(3, 50), {}, seed=0, step=0)


@pytest.mark.parametrize("causal", [True, False])
def test_a_complete_series_gives_the_same_logits_with_an_all_ones_observed_mask(causal):
    """Point dropout trains with observed_mask on complete data, which is tested without one: the
    mask-aware model must read both the same way."""
    from ccnn_hf import build_ccnn

    torch.manual_seed(0)
    model = build_ccnn(
        "smnist_4_140", hidden_channels=8, num_blocks=2, in_chans=2, num_classes=3, base_resolution=[40], causal=causal
    ).eval()
    x = torch.randn(3, 2, 40)
    with torch.no_grad():
        assert torch.equal(model(x), model(x, observed_mask=torch.ones(3, 40, dtype=torch.bool)))
