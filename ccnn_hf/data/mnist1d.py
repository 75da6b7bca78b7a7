"""MNIST-1D (Greydanus 2020, arXiv:2011.14439), regenerated from scratch without downloads.

Each sample starts from one of ten hand-made 12-point templates, one per digit. The template is
followed by a random amount of zero padding and stretched onto a fixed 72-point working grid, scaled
in amplitude and rolled (translated). Where the rolled signal is padding, smooth correlated noise
takes its place; white noise and a random linear shear are added on top. Only the very last step
resamples the 72-point signal to the requested length, so the same samples exist at any length
(40 by default; ``test_at(80)`` gives the same test signals at 80 points).
"""

from __future__ import annotations

import os

import numpy as np
from scipy.ndimage import gaussian_filter1d

from .base import ArrayDataset, BuiltinDataset, Resolution, channel_stats, make_split, normalise
from .cache import cache_path, cached_arrays, split_keys

VERSION = "1"
LABEL_NAMES = [str(d) for d in range(10)]

# One row per digit 0-9: the ten 12-point shapes of the MNIST-1D paper.
_TEMPLATE_POINTS = np.array(
    [
        [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],
        [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],
        [5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5],
        [5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5],
        [5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5],
        [5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5],
        [5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5],
        [5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5],
    ]
)
_PADDING = (36, 60)  # zeros appended after the template, drawn uniformly from this closed range
_WORK_LEN = 12 + _PADDING[1]  # working grid (72 points) on which all random transforms act
_SCALE = 0.4  # amplitude factor drawn from 1 +- SCALE / 2
_MAX_SHIFT = 48  # roll by 0 .. MAX_SHIFT - 1 points
_CORR_NOISE = 0.25  # std of the white noise that is Gaussian-smoothed (sigma 2) to fill the background
_IID_NOISE = 0.02
_SHEAR = 0.75  # slope drawn from +- SHEAR / 2 across the signal


def _templates() -> np.ndarray:
    """Templates whitened per digit, starting at zero and scaled by 1/6: ``[10, 12]``."""
    t = _TEMPLATE_POINTS - _TEMPLATE_POINTS.mean(1, keepdims=True)
    t = t / t.std(1, keepdims=True)
    return (t - t[:, :1]) / 6.0


def _resample(signals: np.ndarray, length: int) -> np.ndarray:
    """Linear interpolation of ``[N, L0]`` signals, both ends kept, onto ``length`` points."""
    pos = np.linspace(0.0, signals.shape[1] - 1, length)
    lo = np.minimum(pos.astype(np.int64), signals.shape[1] - 2)
    frac = pos - lo
    return signals[:, lo] * (1 - frac) + signals[:, lo + 1] * frac


def generate_signals(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noisy, transformed signals on the 72-point working grid for the given digit labels: ``[N, 72]``."""
    n = len(labels)
    # Template followed by p zeros, stretched over the working grid: position s in template points.
    padding = rng.integers(_PADDING[0], _PADDING[1] + 1, size=n)
    s = np.linspace(0.0, 1.0, _WORK_LEN)[None, :] * (11 + padding)[:, None]  # [N, 72]
    shape = np.concatenate([_templates(), np.zeros((10, 1))], axis=1)[labels]  # template, then zero
    lo = np.minimum(s.astype(np.int64), 12)
    hi = np.minimum(lo + 1, 12)
    frac = s - lo
    rows = np.arange(n)[:, None]
    x = shape[rows, lo] * (1 - frac) + shape[rows, hi] * frac
    on_template = s <= 11
    x *= 1 + _SCALE * (rng.random(n)[:, None] - 0.5)
    # Roll every row by its own shift.
    idx = (np.arange(_WORK_LEN)[None, :] - rng.integers(0, _MAX_SHIFT, size=n)[:, None]) % _WORK_LEN
    x, on_template = x[rows, idx], on_template[rows, idx]
    background = gaussian_filter1d(_CORR_NOISE * rng.standard_normal((n, _WORK_LEN)), sigma=2, axis=1)
    x = np.where(on_template, x, background) + _IID_NOISE * rng.standard_normal((n, _WORK_LEN))
    x -= _SHEAR * (rng.random(n)[:, None] - 0.5) * np.linspace(-0.5, 0.5, _WORK_LEN)[None, :]
    return x


def _build(seed: int, n_train: int, n_test: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    labels = rng.permutation(np.arange(n) % 10)  # balanced classes, shuffled
    signals = generate_signals(labels, rng)
    return {
        "train_signals": signals[:n_train],
        "train_labels": labels[:n_train],
        "test_signals": signals[n_train:],
        "test_labels": labels[n_train:],
    }


def load_mnist1d(
    *,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    n_train: int = 4000,
    n_test: int = 1000,
    length: int = 40,
) -> BuiltinDataset:
    """``mnist1d``: ``[N, 1, length]`` signals, 10 balanced classes; normalised with the train mean/std."""
    options = {"n_train": n_train, "n_test": n_test}  # the cache holds length-free 72-point signals
    arrays = cached_arrays(
        cache_path(cache_dir, "mnist1d", VERSION, options, seed),
        lambda: _build(seed, n_train, n_test),
        split_keys("signals", "labels"),
    )
    train_raw = _resample(arrays["train_signals"], length)[:, None]
    mean, std = channel_stats(train_raw)

    def render_test(target: Resolution | None, _sampling_rate: float | None) -> ArrayDataset:
        signals = _resample(arrays["test_signals"], target[0])[:, None]
        return make_split(normalise(signals, mean, std), arrays["test_labels"])

    return BuiltinDataset(
        name="mnist1d",
        modality="sequence",
        data_dim=1,
        num_classes=10,
        label_names=LABEL_NAMES,
        in_channels=1,
        base_resolution=(length,),
        sampling_rate=None,
        train=make_split(normalise(train_raw, mean, std), arrays["train_labels"]),
        test=render_test((length,), None),
        mean=mean,
        std=std,
        render_test=render_test,
    )
