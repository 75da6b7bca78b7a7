"""Containers shared by every built-in dataset, plus small array helpers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

Resolution = tuple[int, ...]
TestRenderer = Callable[[Resolution | None, float | None], "ArrayDataset"]
TrainRenderer = Callable[[Resolution, torch.Tensor], torch.Tensor]


@dataclass
class ArrayDataset:
    """One split held in memory; also usable directly as a ``torch.utils.data.Dataset``.

    Args:
        inputs: float32 ``[N, C, *spatial]`` (images ``[N, C, H, W]``, sequences and audio ``[N, C, L]``).
            Where a mask says a value is padding or unobserved, the input holds 0 (finite, never NaN).
        labels: int64 ``[N]``.
        attention_mask: optional bool ``[N, L]`` for sequences of different lengths: True at real
            time points, False at the right padding (the transformers convention).
        observed_mask: optional bool ``[N, L]`` (the same for every channel) or ``[N, C, L]``: True
            where a value was observed. It is False at padding too.
    """

    inputs: torch.Tensor
    labels: torch.Tensor
    attention_mask: torch.Tensor | None = None
    observed_mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.inputs.dtype != torch.float32 or self.labels.dtype != torch.int64:
            raise TypeError(
                f"expected float32 inputs and int64 labels, got {self.inputs.dtype} and {self.labels.dtype}"
            )
        if self.inputs.shape[0] != self.labels.shape[0] or self.labels.ndim != 1:
            raise ValueError(f"inputs {tuple(self.inputs.shape)} do not match labels {tuple(self.labels.shape)}")
        shape = tuple(self.inputs.shape)
        for name, allowed in (
            ("attention_mask", [(shape[0], *shape[2:])]),
            ("observed_mask", [(shape[0], *shape[2:]), shape]),
        ):
            mask = getattr(self, name)
            if mask is not None and (mask.dtype != torch.bool or tuple(mask.shape) not in allowed):
                raise ValueError(
                    f"{name} must be a bool tensor of shape {' or '.join(map(str, allowed))}, "
                    f"got {mask.dtype} {tuple(mask.shape)}"
                )

    def masks(self) -> dict[str, torch.Tensor]:
        """The masks this split has, by the keyword a model's ``forward`` takes them under."""
        return {
            name: mask
            for name, mask in (("attention_mask", self.attention_mask), ("observed_mask", self.observed_mask))
            if mask is not None
        }

    def subset(self, index: torch.Tensor) -> "ArrayDataset":
        """The samples at ``index`` (indices or a bool mask), masks included."""
        return ArrayDataset(
            self.inputs[index],
            self.labels[index],
            *(None if m is None else m[index] for m in (self.attention_mask, self.observed_mask)),
        )

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[index], self.labels[index]


@dataclass
class BuiltinDataset:
    """A built-in dataset: train and test splits plus what a model needs to know about them.

    ``train.inputs`` and ``test.inputs`` are already normalised per channel, ``(x - mean[c]) / std[c]``,
    where ``x`` is the raw signal (pixels in [0, 1], waveform in [-1, 1], ...); ``mean``/``std`` record
    the constants so that new inputs can be treated the same way. ListOps is the exception: its inputs
    are raw token ids (``mean=(0.0,)``, ``std=(1.0,)``).
    """

    name: str
    modality: str
    data_dim: int
    num_classes: int
    label_names: list[str]
    in_channels: int
    base_resolution: Resolution
    sampling_rate: float | None
    train: ArrayDataset
    test: ArrayDataset
    mean: tuple[float, ...]
    std: tuple[float, ...]
    render_test: TestRenderer | None = field(default=None, repr=False, compare=False)
    """Internal hook behind :meth:`test_at`; ``None`` where another resolution makes no sense."""
    render_train: TrainRenderer | None = field(default=None, repr=False, compare=False)
    """The training samples at the given indices rendered from the source images at another
    resolution, normalised like ``train`` (images only; multi-resolution training)."""

    def test_at(
        self,
        resolution: int | Sequence[int] | None = None,
        sampling_rate: float | None = None,
    ) -> ArrayDataset:
        """The same test samples (same order and labels) at another resolution, length or sampling rate.

        Images are resized from the original pictures (bicubic up, antialiased bilinear down); generated data is
        re-rendered natively from the same geometry and seed; audio is the same clips at another
        sampling rate. An int ``resolution`` means a square image or a sequence length. Inputs are
        normalised with this dataset's ``mean``/``std``.

        Raises:
            ValueError: for an argument that does not fit the modality, or a dataset without a
                meaningful other resolution (ListOps tokens, images read row by row: a flattened
                28x28 image is no finer sampling of the flattened 14x14 one).
        """
        if sampling_rate is not None and self.modality != "audio":
            raise ValueError(f"{self.name}: sampling_rate only applies to audio datasets; use resolution")
        if resolution is not None and self.modality == "audio":
            raise ValueError(f"{self.name}: audio is resampled with sampling_rate=..., not resolution")
        target = None if resolution is None else as_resolution(resolution, self.data_dim)
        if target in (None, self.base_resolution) and sampling_rate in (None, self.sampling_rate):
            return self.test
        if self.render_test is None:
            raise ValueError(f"{self.name}: its test set exists only at {self.base_resolution}")
        return self.render_test(target, sampling_rate)


def as_resolution(resolution: int | Sequence[int], data_dim: int) -> Resolution:
    """Turn ``16`` into ``(16, 16)`` for 2D data, ``(16,)`` for 1D; check tuples for length and sign."""
    if isinstance(resolution, (int, np.integer)):
        res = (int(resolution),) * data_dim
    else:
        res = tuple(int(r) for r in resolution)
    if len(res) != data_dim or min(res) < 1:
        raise ValueError(f"resolution {resolution!r} is not a positive size for {data_dim}D data")
    return res


def make_split(inputs: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> ArrayDataset:
    """Wrap arrays as an :class:`ArrayDataset` with the canonical dtypes."""
    return ArrayDataset(
        inputs=torch.as_tensor(inputs, dtype=torch.float32).contiguous(),
        labels=torch.as_tensor(labels, dtype=torch.int64),
    )


def channel_stats(x: np.ndarray | torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of ``[N, C, ...]`` data, as plain float tuples (rounded to 4 digits)."""
    x = torch.as_tensor(x, dtype=torch.float64)
    x = x.transpose(0, 1).reshape(x.shape[1], -1)
    return tuple(round(v, 4) for v in x.mean(1).tolist()), tuple(round(v, 4) for v in x.std(1).tolist())


def normalise(x: np.ndarray | torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(x - mean[c]) / std[c]`` for ``[N, C, ...]`` data, as float32."""
    x = torch.as_tensor(x, dtype=torch.float32)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - torch.tensor(mean).view(shape)) / torch.tensor(std).view(shape)


def stratified_split(labels: np.ndarray, n_test: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled train/test indices with ``n_test`` test samples spread over classes in proportion."""
    if not 0 < n_test < len(labels):
        raise ValueError(f"n_test must be between 1 and {len(labels) - 1}, got {n_test}")
    order = rng.permutation(len(labels))
    # Rank each sample within its class (in shuffled order) and take the lowest fractional ranks.
    ranks = np.empty(len(labels))
    for c in np.unique(labels):
        members = order[labels[order] == c]
        ranks[members] = (np.arange(len(members)) + rng.random()) / len(members)
    by_rank = order[np.argsort(ranks[order], kind="stable")]
    test = np.sort(by_rank[:n_test])
    train = np.setdiff1d(np.arange(len(labels)), test)
    return rng.permutation(train), rng.permutation(test)
