"""The error type for problems with what a ``ccnn-train`` user gave: flags, config files, data,
checkpoints, the output folder, the disk.

``ccnn-train`` prints a :class:`UserError` as one line (``ccnn-train: error: ...``) and exits
with status 2, like argparse does for bad flags; every other exception is a bug and keeps its
traceback. A message names the input and says what to do.
"""

from __future__ import annotations

import errno
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["UserError", "disk_errors"]

# errno values that describe the user's disk or permissions, not a bug
_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


class UserError(ValueError):
    """A bad input, named with what to do about it (a ValueError, so ``except ValueError`` still sees it)."""


@contextmanager
def disk_errors(path: Path | str, what: str) -> Iterator[None]:
    """Turn a failed write of ``what`` under ``path`` (full disk, quota, read-only or forbidden
    folder) into a :class:`UserError`. torch and safetensors report a full disk from C++ as a
    ``RuntimeError`` (e.g. ``basic_ios::clear``): that counts too when the disk is in fact full."""
    try:
        yield
    except OSError as error:
        if error.errno not in _DISK_ERRNOS:
            raise
        raise UserError(
            f"could not write {what} to {path}: {error.strerror or error} (free some space, "
            "or choose another --output_dir)"
        ) from error
    except RuntimeError as error:
        if not _disk_is_full(Path(path)):
            raise
        raise UserError(
            f"could not write {what} to {path}: the disk is full (free some space, or choose another --output_dir)"
        ) from error


def _disk_is_full(path: Path, reserve: int = 1 << 20) -> bool:
    """Less than ``reserve`` bytes free on the file system holding ``path`` (or its nearest existing parent)."""
    import shutil

    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free < reserve
