"""On-disk ``.npz`` cache for generated datasets.

A file name carries the dataset name, its generator version and a hash of the generator version,
every option that shapes the stored arrays and the seed, so a rerun with the same settings loads
instantly and a changed generator or option never serves stale data. (Options applied after loading,
such as MNIST-1D's output length, are left out: one file serves them all.) Files are written
atomically (temp file + ``os.replace``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np

Arrays = dict[str, np.ndarray]


def default_cache_dir() -> Path:
    """``$CCNN_HF_CACHE`` if set, else ``~/.cache/ccnn_hf/datasets``."""
    return Path(os.environ.get("CCNN_HF_CACHE") or Path.home() / ".cache" / "ccnn_hf" / "datasets")


def cache_path(
    cache_dir: str | os.PathLike | None,
    name: str,
    version: str,
    options: Mapping[str, Any],
    seed: int,
) -> Path:
    """Where the arrays for ``(name, version, options, seed)`` live."""
    key = json.dumps({"name": name, "version": version, "options": dict(options), "seed": seed}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / f"{name}-v{version}-{digest}.npz"


def split_keys(*names: str) -> tuple[str, ...]:
    """``train_NAME`` and ``test_NAME`` for every name: the arrays a generator stores per split."""
    return tuple(f"{split}_{name}" for split in ("train", "test") for name in names)


def cached_arrays(path: Path, build: Callable[[], Arrays], keys: Collection[str]) -> Arrays:
    """Load the arrays stored at ``path``, or build, store and return them. A stored file that
    is unreadable or lacks any of ``keys`` (the arrays ``build`` returns) is built again."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            if set(keys) <= set(stored.files):
                return {key: stored[key] for key in stored.files}
    except (FileNotFoundError, zipfile.BadZipFile, EOFError, ValueError):
        pass  # missing or unreadable: regenerate
    arrays = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp creates owner-only files; cached data is not secret
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return arrays
