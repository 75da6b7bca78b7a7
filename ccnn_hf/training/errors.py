"""Writes that fail on the user's disk (full, quota, read-only, forbidden) as a
:class:`~ccnn_hf.data.errors.UserError` saying which it was; ``UserError`` itself lives in
:mod:`ccnn_hf.data.errors` (the data readers raise it too) and is imported from here by the trainer.
"""

from __future__ import annotations

import errno
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..data.errors import UserError

__all__ = ["UserError", "disk_errors"]

# errno values that describe the user's disk or permissions, not a bug, with what to do about each
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_READ_ONLY = {errno.EROFS, errno.EACCES, errno.EPERM}
_DISK_ERRNOS = _FULL | _READ_ONLY


@contextmanager
def disk_errors(path: Path | str, what: str) -> Iterator[None]:
    """Turn a failed write of ``what`` under ``path`` (full disk, quota, read-only file system,
    forbidden or immutable folder) into a :class:`UserError` that says which it was. torch and
    safetensors report such failures from native code: a ``SafetensorError`` naming its ``os error``
    counts as that error, and a ``RuntimeError`` (e.g. ``basic_ios::clear``) when the disk is in fact full."""
    from safetensors import SafetensorError

    try:
        yield
    except OSError as error:
        if error.errno not in _DISK_ERRNOS:
            raise
        raise _disk_error(path, what, error.errno, error.strerror or str(error)) from error
    except (RuntimeError, SafetensorError) as error:
        code = _native_errno(error)
        if code in _DISK_ERRNOS:
            raise _disk_error(path, what, code, os.strerror(code)) from error
        if code is None and _disk_is_full(Path(path)):
            raise _disk_error(path, what, errno.ENOSPC, "the disk is full") from error
        raise


def _disk_error(path: Path | str, what: str, code: int, reason: str) -> UserError:
    """The message for a write that failed with ``code``: a full disk asks for space, a read-only
    or forbidden place for another folder (freeing space would not help there)."""
    if code in _FULL:
        advice = "free some space, or choose another --output_dir"
    elif code == errno.EROFS:
        advice = "the file system is mounted read-only; choose another --output_dir"
    else:
        advice = "the folder or file is read-only or immutable for this user; choose another --output_dir"
    return UserError(f"could not write {what} to {path}: {reason} ({advice})")


def _native_errno(error: Exception) -> int | None:
    """The errno a native library's error message carries (safetensors: ``... (os error 28)``), if any."""
    found = re.search(r"\(os error (\d+)\)", str(error))
    return int(found.group(1)) if found else None


def _disk_is_full(path: Path, reserve: int = 1 << 20) -> bool:
    """Less than ``reserve`` bytes free on the file system holding ``path`` (or its nearest existing parent)."""
    import shutil

    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free < reserve
