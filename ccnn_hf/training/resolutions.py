"""Inputs at other resolutions (or sampling rates): the resize baseline and multi-resolution training.

* :func:`to_base` resizes (images, sequences) or resamples (audio) a test set rendered at another
  setting back to the task's base setting, as a user of a fixed-resolution model would: the
  "resize" evaluation mode.
* :class:`ResolutionSchedule` picks the setting of each training step for ``--train_resolutions``
  from a generator keyed on (seed, step), so a resumed run draws the same settings.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Sequence

import numpy as np
import torch

from ..data import ArrayDataset
from ..data.images import resize_images
from ..settings import MIN_SIZE
from ..data.tasks import TaskData
from .errors import UserError
from ..data.memory import check_fits, render_bytes

__all__ = ["to_base", "resample_audio", "ResolutionSchedule", "parse_train_resolutions"]


def resample_audio(
    inputs: torch.Tensor, mean: float, std: float, rate: float, target_rate: float, length: int
) -> torch.Tensor:
    """Resample normalised ``[N, C, L]`` clips from ``rate`` to ``target_rate`` Hz (``scipy.signal.resample_poly``,
    as the data code resamples) and cut or zero-pad them at the end to ``length`` samples; the
    normalisation ``(x - mean) / std`` is undone first and redone after, so that padding is silence."""
    from scipy.signal import resample_poly

    ratio = Fraction(int(target_rate), int(rate)).limit_denominator(1000)
    raw = inputs.double().numpy() * std + mean
    out = resample_poly(raw, ratio.numerator, ratio.denominator, axis=-1)[..., :length]
    out = np.pad(out, [(0, 0)] * (out.ndim - 1) + [(0, length - out.shape[-1])])
    return torch.from_numpy((out - mean) / std).float()


def to_base(task: TaskData, data: ArrayDataset, rate: float | None) -> ArrayDataset:
    """``data`` (the test set at another resolution, or at sampling rate ``rate``) resized or
    resampled to the task's base setting. Images and sequences: antialiased bilinear when
    shrinking, bicubic when enlarging (the data code's :func:`resize_images`; a linear map, so
    resizing normalised inputs equals resizing the raw ones); audio: :func:`resample_audio`."""
    if task.modality == "audio":
        inputs = resample_audio(
            data.inputs, task.mean[0], task.std[0], rate, task.sampling_rate, task.base_resolution[0]
        )
    elif task.data_dim == 1:
        inputs = resize_images(data.inputs.unsqueeze(2), (1, *task.base_resolution)).squeeze(2)
    else:
        inputs = resize_images(data.inputs, task.base_resolution)
    return ArrayDataset(inputs.contiguous(), data.labels)


def parse_train_resolutions(text: str, task: TaskData) -> list:
    """``"14,28"`` (a set) or ``"14-28"`` (every whole value in the range) -> the sorted settings:
    square image sides, sequence lengths, or sampling rates in Hz for audio. The base setting may be
    among them; a task that cannot be rendered at other settings is refused."""
    what = "sampling rates in Hz" if task.modality == "audio" else "sizes"
    try:
        if "-" in text:
            low, high = (int(part) for part in text.split("-"))
            values = list(range(low, high + 1))
        else:
            values = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise UserError(
            f"--train_resolutions {text}: expected whole {what} such as 14,28 or a range such as 14-28"
        ) from None
    lowest = 1 if task.modality == "audio" else MIN_SIZE
    if not values or values[0] < lowest:
        raise UserError(f"--train_resolutions {text}: expected {what} >= {lowest}, lowest first in a range")
    if task.render_train is None:
        raise UserError(
            f"--train_resolutions: {task.name} ({task.modality} data) has no source to render its "
            "training samples at other settings"
        )
    base = task.sampling_rate if task.modality == "audio" else task.base_resolution[0]
    for value in values:
        if value != base:
            check_fits(
                f"--train_resolutions {text}: one training sample at {value} "
                f"({'x'.join(map(str, task.input_shape(value)))} values)",
                render_bytes(1, task.in_channels, task.input_shape(value)),
            )
            try:
                task.render_train(value, torch.arange(1))
            except ValueError as error:
                raise UserError(f"--train_resolutions {text}: {error}") from None
    return values


class ResolutionSchedule:
    """The setting (image side, sequence length or sampling rate) of every training step: uniform
    over ``settings``, drawn from a generator seeded with (seed, step) and never from the global
    RNG, so that resuming at any step reproduces the uninterrupted run."""

    def __init__(self, settings: Sequence, seed: int) -> None:
        self.settings, self.seed = list(settings), seed

    def __call__(self, step: int):
        return self.settings[int(np.random.default_rng((self.seed, step)).integers(len(self.settings)))]

    def batch(self, task: TaskData, step: int, x: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Step ``step``'s inputs (the samples ``index``, rendered at the step's setting from the
        source data) and the keyword arguments the model needs for them (audio: the sampling rate)."""
        setting = self(step)
        audio = task.modality == "audio"
        if setting == (task.sampling_rate if audio else task.base_resolution[0]):
            rendered = x
        else:
            rendered = task.render_train(setting, index.cpu()).to(x.device)
        return rendered, ({"sampling_rate": float(setting)} if audio else {})
