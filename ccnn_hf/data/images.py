"""Build image datasets (and their row-major or permuted sequence views) from arrays of pictures."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .base import ArrayDataset, BuiltinDataset, Resolution, channel_stats, make_split, normalise


def resize_images(images: torch.Tensor, size: Resolution) -> torch.Tensor:
    """Resize ``[N, C, H, W]`` images (no-op at the same size): bicubic when enlarging (bilinear
    would blur what the originals hold up to their Nyquist frequency), antialiased bilinear when
    shrinking. Values are clamped back to the originals' range."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    if all(t >= s for t, s in zip(size, images.shape[-2:])):
        out = F.interpolate(images, size=size, mode="bicubic", align_corners=False)
        return out.clamp(images.min(), images.max())
    return F.interpolate(images, size=size, mode="bilinear", antialias=True, align_corners=False)


def image_dataset(
    name: str,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    label_names: list[str],
    *,
    resolution: int | None = None,
    as_sequence: bool = False,
    permutation: np.ndarray | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> BuiltinDataset:
    """Package ``[N, C, H, W]`` images with values in [0, 1] as a :class:`BuiltinDataset`.

    Args:
        resolution: train (and base test) side length; the images are resized when it differs.
        as_sequence: flatten each image row by row into a ``[C, H * W]`` sequence.
        permutation: fixed reordering of the flattened positions (permuted-MNIST style).
        mean, std: normalisation constants; computed from the training images when omitted.
    """
    originals = torch.as_tensor(test_images, dtype=torch.float32)
    train_originals = torch.as_tensor(train_images, dtype=torch.float32)
    size = (resolution, resolution) if resolution else tuple(originals.shape[-2:])
    train = resize_images(train_originals, size)
    if mean is None or std is None:
        mean, std = channel_stats(train)
    mean, std = tuple(mean), tuple(std)
    channels = train.shape[1]

    def layout(images: torch.Tensor) -> torch.Tensor:
        x = normalise(images, mean, std)
        if not as_sequence:
            return x
        x = x.flatten(2)  # [N, C, H * W], row-major
        return x if permutation is None else x[..., torch.as_tensor(permutation)]

    def render_test(target: Resolution | None, _sampling_rate: float | None) -> ArrayDataset:
        if as_sequence:
            if permutation is not None:
                raise ValueError(f"{name}: a permuted sequence has no natural other length")
            side = math.isqrt(target[0])
            if side * side != target[0]:
                raise ValueError(f"{name}: sequence length {target[0]} is not the square of an image side")
            raise ValueError(
                f"{name}: length {target[0]} would be a {side}x{side} image read row by row, which is "
                f"not a resampling of the {size[0]}x{size[1]} image's {size[0] * size[1]}-step sequence "
                "(rows change length and count), so it measures no transfer"
            )
        return make_split(layout(resize_images(originals, target)), test_labels)

    def render_train(target: Resolution, indices: torch.Tensor) -> torch.Tensor:
        return layout(resize_images(train_originals[indices], target))

    train_x, test_x = layout(train), layout(resize_images(originals, size))
    return BuiltinDataset(
        name=name,
        modality="sequence" if as_sequence else "image",
        data_dim=1 if as_sequence else 2,
        num_classes=len(label_names),
        label_names=list(label_names),
        in_channels=channels,
        base_resolution=tuple(train_x.shape[2:]),
        sampling_rate=None,
        train=make_split(train_x, train_labels),
        test=make_split(test_x, test_labels),
        mean=mean,
        std=std,
        render_test=render_test,
        render_train=None if as_sequence else render_train,
    )
