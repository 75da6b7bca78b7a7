"""scikit-learn's 1 797 real handwritten digits (UCI optical recognition set), 8x8 pixels, 16 grey levels."""

from __future__ import annotations

import numpy as np

from .base import BuiltinDataset, stratified_split
from .images import image_dataset

LABEL_NAMES = [str(d) for d in range(10)]


def _load(seed: int, n_test: int, as_sequence: bool, name: str) -> BuiltinDataset:
    from sklearn.datasets import load_digits  # imported here: sklearn takes ~1.5 s to import

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None]  # [1797, 1, 8, 8] in [0, 1]
    labels = bunch.target.astype(np.int64)
    train, test = stratified_split(labels, n_test, np.random.default_rng(seed))
    return image_dataset(
        name, images[train], labels[train], images[test], labels[test], LABEL_NAMES, as_sequence=as_sequence
    )


def load_digits_images(*, seed: int = 0, n_test: int = 360) -> BuiltinDataset:
    """``digits``: 8x8 images, stratified split (default 1 437 train / 360 test), normalised with train stats."""
    return _load(seed, n_test, as_sequence=False, name="digits")


def load_digits_sequences(*, seed: int = 0, n_test: int = 360) -> BuiltinDataset:
    """``digits_seq``: the same split as ``digits``, each image flattened row by row to length 64."""
    return _load(seed, n_test, as_sequence=True, name="digits_seq")
