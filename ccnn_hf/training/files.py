"""Writing result files safely (ccnn-train, the conversion script, the release tooling).

Every file is written to a fresh temporary file in its own folder (``mkstemp``: created with
``O_EXCL``, so never through a planted link) and renamed into place: a rename replaces a link
at the destination itself, never the file it points to. Files appended to are opened with
``O_NOFOLLOW``; folders the writer creates or writes into are refused when they are links.
A path that is a link where none is allowed raises a :class:`~ccnn_hf.training.errors.UserError`
naming it (a ``ValueError``).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from .errors import UserError

__all__ = [
    "atomic_file",
    "fresh_folder",
    "open_append",
    "open_own_file",
    "own_folder",
    "refuse_link",
    "remove",
    "write_json_atomic",
    "write_text_atomic",
]


def refuse_link(path: Path) -> None:
    """Raise a UserError when ``path`` is a symbolic link (a planted one would redirect a write)."""
    if os.path.islink(path):
        raise UserError(
            f"{path} is a symbolic link (to {os.readlink(path)}); files are never written through links: "
            "remove it, or choose another folder"
        )


@contextmanager
def atomic_file(path: Path) -> Iterator[IO[bytes]]:
    """A binary file to write ``path``'s new content into; renamed over ``path`` when the block
    ends without an error (a link there is replaced, never followed), removed otherwise."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
        os.chmod(tmp, 0o644)  # mkstemp creates owner-only files; results are not secret
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a fresh temporary file and an atomic rename."""
    with atomic_file(path) as handle:
        handle.write(text.encode("utf-8"))


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON to ``path`` atomically; NaN or infinity (not JSON) raises a ValueError naming the file."""
    try:
        text = json.dumps(data, indent=2, sort_keys=True, allow_nan=False)
    except ValueError as error:
        raise ValueError(f"refusing to write {path}: {error} (NaN and infinity are not JSON)") from None
    write_text_atomic(path, text + "\n")


def open_own_file(path: Path, flags: int) -> int:
    """A descriptor of ``path`` opened with ``flags`` (created if missing, never truncated here),
    never through a link nor into a file with other names: a device or a hard link is refused."""
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError:
        refuse_link(path)
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        raise UserError(
            f"{path} is not a plain file of its own (a device or a hard link); remove it, or choose another folder"
        )
    return fd


def open_append(path: Path) -> IO[str]:
    """``path`` opened for appending text (see :func:`open_own_file`)."""
    return os.fdopen(open_own_file(path, os.O_WRONLY | os.O_APPEND), "a", encoding="utf-8")


def own_folder(path: Path) -> Path:
    """Create the folder ``path`` if missing; refuse it when it is a link or not a folder."""
    path = Path(path)
    refuse_link(path)
    path.mkdir(exist_ok=True)
    refuse_link(path)  # planted between the check and mkdir
    if not path.is_dir():
        raise UserError(f"{path} is not a folder; remove it, or choose another folder")
    return path


def remove(path: Path) -> None:
    """Remove ``path`` if present: a link or a file is unlinked (never its target), a folder deleted."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def fresh_folder(path: Path) -> Path:
    """An empty folder at ``path``, made by this call (whatever was there is removed first, a
    link only unlinked): nothing written into it can reach another place."""
    path = Path(path)
    refuse_link(path.parent)
    remove(path)
    path.mkdir()
    return path
