"""UCR/UEA time-series archives shipped inside the ``aeon`` wheel, with the irregular-sampling protocol.

``load_aeon("JapaneseVowels", drop_rate=0.3)`` reads an archive with
``aeon.datasets.load_classification`` from the files installed with aeon (never the network) and
returns a :class:`BuiltinDataset` whose splits carry masks:

* variable-length series are padded on the right to the longest series of either split;
  ``attention_mask`` marks the real time points (``None`` when every series has the same length);
* ``drop_rate`` implements the usual irregular-sampling protocol: every series independently loses
  ``round(drop_rate * length)`` of its real time points (all channels of a time point together; at
  least one point is kept), drawn with a generator seeded by ``(drop_seed, split, series index)``.
  The draw depends on nothing else, so every model compared sees the same points, and the points
  dropped at a lower rate are also dropped at a higher one (one random order per series, cut at the
  rate). ``observed_mask`` marks what is left (``None`` when nothing is missing); values missing in
  the archive itself (NaN) are unobserved too;
* each channel is normalised with the mean and standard deviation of its observed training values;
  padded and unobserved inputs are then set to 0, so the tensors stay finite;
* string labels become class indices in sorted order (numeric order when every label is a number).

:func:`interpolate_missing` is the usual preparation of such data for a classifier that needs
complete, equal-length series (MiniRocket): linear interpolation over the observed points inside each
series' real length, then linear resampling of that real length onto a common grid;
:func:`minirocket_accuracies` is that baseline, fitted and tested.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .base import ArrayDataset, BuiltinDataset

__all__ = [
    "AEON_PREFIX",
    "shipped_archives",
    "load_aeon",
    "drop_order",
    "kept_points",
    "interpolate_missing",
    "minirocket_accuracies",
]

AEON_PREFIX = "aeon:"
_SPLITS = {"train": 0, "test": 1}


def _data_dir() -> Path:
    import aeon.datasets

    return Path(aeon.datasets.__file__).parent / "data"


@lru_cache(maxsize=1)
def shipped_archives() -> tuple[str, ...]:
    """Names of the archives installed with aeon that have a train and a test file (regression
    problems among them are refused by :func:`load_aeon`)."""
    folder = _data_dir()
    return tuple(
        sorted(
            p.name
            for p in folder.iterdir()
            if (p / f"{p.name}_TRAIN.ts").is_file() and (p / f"{p.name}_TEST.ts").is_file()
        )
    )


def drop_order(length: int, drop_seed: int, split: str, index: int) -> np.ndarray:
    """The random order in which series ``index`` of ``split`` loses its ``length`` time points."""
    generator = np.random.default_rng(np.random.SeedSequence([drop_seed, _SPLITS[split], index]))
    return generator.permutation(length)


def kept_points(lengths: np.ndarray, max_length: int, drop_rate: float, drop_seed: int, split: str) -> np.ndarray:
    """Bool ``[N, max_length]``: the real time points each series keeps after dropping ``drop_rate``
    of them (padding is False)."""
    if not 0 <= drop_rate < 1:
        raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate!r}")
    kept = np.arange(max_length)[None, :] < np.asarray(lengths)[:, None]
    for i, length in enumerate(lengths):
        n_drop = min(int(round(drop_rate * length)), int(length) - 1)
        if n_drop:
            kept[i, drop_order(int(length), drop_seed, split, i)[:n_drop]] = False
    return kept


def _read(name: str, split: str) -> tuple[list[np.ndarray], np.ndarray]:
    from aeon.datasets import load_classification

    try:
        X, y = load_classification(name, split=split, extract_path=str(_data_dir()))
    except ValueError as error:  # e.g. a regression problem
        raise ValueError(f"aeon archive {name!r}: {error}") from None
    return [np.asarray(series, dtype=np.float64) for series in X], np.asarray(y).astype(str)


def _label_order(labels: np.ndarray) -> list[str]:
    names = sorted(set(labels.tolist()))
    try:
        return sorted(names, key=float)
    except ValueError:
        return names


def load_aeon(name: str, *, drop_rate: float = 0.0, drop_seed: int = 0) -> BuiltinDataset:
    """Archive ``name`` (e.g. ``"JapaneseVowels"``) as ``[N, C, L_max]`` sequences with masks; see
    the module docstring for the padding, the drop protocol and the normalisation.

    Raises:
        ImportError: aeon is not installed (``pip install ccnn_hf[data]``).
        ValueError: an archive aeon does not ship, a regression problem, or ``drop_rate`` outside [0, 1).
    """
    if not 0 <= drop_rate < 1:
        raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate!r}")
    try:
        import aeon  # noqa: F401
    except ImportError:
        raise ImportError(
            "aeon archives need the aeon package: pip install 'aeon>=1.6,<1.7' (or ccnn_hf[data])"
        ) from None
    if name not in shipped_archives():
        raise ValueError(
            f"aeon ships no classification archive {name!r} (nothing is downloaded); "
            f"installed: {', '.join(shipped_archives())}"
        )
    raw = {split: _read(name, split) for split in _SPLITS}
    channels = {series.shape[0] for split in raw.values() for series in split[0]}
    if len(channels) != 1:
        raise ValueError(f"aeon archive {name!r}: series have different channel counts {sorted(channels)}")
    n_channels = channels.pop()
    lengths = {split: np.array([s.shape[1] for s in raw[split][0]]) for split in _SPLITS}
    max_length = int(max(lengths["train"].max(), lengths["test"].max()))
    label_names = _label_order(np.concatenate([raw["train"][1], raw["test"][1]]))
    label_index = {label: i for i, label in enumerate(label_names)}

    values, observed = {}, {}
    for split, (series, _) in raw.items():
        padded = np.zeros((len(series), n_channels, max_length))
        finite = np.zeros(padded.shape, dtype=bool)
        for i, s in enumerate(series):
            padded[i, :, : s.shape[1]] = np.nan_to_num(s)
            finite[i, :, : s.shape[1]] = np.isfinite(s)
        kept = kept_points(lengths[split], max_length, drop_rate, drop_seed, split)
        values[split], observed[split] = padded, finite & kept[:, None, :]

    train_obs = observed["train"]
    count = train_obs.sum(axis=(0, 2))
    if (count < 2).any():
        raise ValueError(
            f"aeon archive {name!r}: channel(s) {np.flatnonzero(count < 2).tolist()} have fewer than "
            "two observed training values; cannot normalise them"
        )
    mean = (values["train"] * train_obs).sum(axis=(0, 2)) / count
    var = (((values["train"] - mean[None, :, None]) ** 2) * train_obs).sum(axis=(0, 2)) / (count - 1)
    std = np.maximum(np.sqrt(var), 1e-6)
    variable = len(set(lengths["train"].tolist()) | set(lengths["test"].tolist())) > 1

    def split_data(split: str) -> ArrayDataset:
        obs = observed[split]
        x = np.where(obs, (values[split] - mean[None, :, None]) / std[None, :, None], 0.0)
        real = np.arange(max_length)[None, :] < lengths[split][:, None]
        same_for_all_channels = (obs == obs[:, :1]).all()
        observed_mask = obs[:, 0] if same_for_all_channels else obs
        missing = not np.array_equal(obs, np.broadcast_to(real[:, None, :], obs.shape))
        return ArrayDataset(
            torch.from_numpy(x).float().contiguous(),
            torch.tensor([label_index[label] for label in raw[split][1]], dtype=torch.int64),
            attention_mask=torch.from_numpy(real) if variable else None,
            observed_mask=torch.from_numpy(np.ascontiguousarray(observed_mask)) if missing else None,
        )

    title = (
        AEON_PREFIX + name + (f" ({drop_rate:g} of time points dropped, drop_seed {drop_seed})" if drop_rate else "")
    )
    return BuiltinDataset(
        name=title,
        modality="sequence",
        data_dim=1,
        num_classes=len(label_names),
        label_names=label_names,
        in_channels=n_channels,
        base_resolution=(max_length,),
        sampling_rate=None,
        train=split_data("train"),
        test=split_data("test"),
        mean=tuple(round(float(v), 6) for v in mean),
        std=tuple(round(float(v), 6) for v in std),
    )


def interpolate_missing(split: ArrayDataset, length: int) -> np.ndarray:
    """Complete, equal-length float64 ``[N, C, length]`` series from a masked split: each channel is
    linearly interpolated over its observed points inside the series' real length (held constant
    before the first and after the last observed point), and that real length is then linearly
    resampled onto ``length`` points, both ends kept.

    Raises:
        ValueError: a channel of a series with no observed value.
    """
    x = split.inputs.double().numpy()
    n, channels, full = x.shape
    real = np.ones((n, full), dtype=bool) if split.attention_mask is None else split.attention_mask.numpy()
    observed = (
        np.broadcast_to(real[:, None, :], x.shape) if split.observed_mask is None else split.observed_mask.numpy()
    )
    if observed.ndim == 2:
        observed = np.broadcast_to(observed[:, None, :], x.shape)
    out = np.empty((n, channels, length))
    for i in range(n):
        size = int(real[i].sum())
        grid = np.linspace(0.0, size - 1, length)
        for c in range(channels):
            where = np.flatnonzero(observed[i, c, :size])
            if not len(where):
                raise ValueError(f"series {i} channel {c} has no observed value to interpolate from")
            filled = np.interp(np.arange(size), where, x[i, c, where])
            out[i, c] = np.interp(grid, np.arange(size), filled)
    return out


def minirocket_accuracies(train: ArrayDataset, tests: list[ArrayDataset], length: int, seed: int = 0) -> list[float]:
    """Test accuracy on each of ``tests`` of aeon's MiniRocket fitted on ``train``, every split's
    missing points filled by :func:`interpolate_missing` onto ``length`` points (one thread).

    aeon sets numba's thread count, which with numba's OpenMP layer is torch's too (one libgomp):
    it is restored afterwards, else later torch work in the process would run on another thread
    count than asked."""
    from aeon.classification.convolution_based import MiniRocketClassifier

    threads = torch.get_num_threads()
    try:
        classifier = MiniRocketClassifier(random_state=seed, n_jobs=1)
        classifier.fit(interpolate_missing(train, length), train.labels.numpy())
        predicted = [np.asarray(classifier.predict(interpolate_missing(t, length))).astype(np.int64) for t in tests]
    finally:
        torch.set_num_threads(threads)
    return [float((p == t.labels.numpy()).mean()) for p, t in zip(predicted, tests)]
