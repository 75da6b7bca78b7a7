"""The output folder of a ``ccnn-train`` run: recognised, locked, and only ever cleaned of its own files.

A run writes ``.ccnn-run.json`` (the marker: the run's options, its status and the files it wrote)
before anything else. ``--overwrite`` removes only those files from a folder that carries the
marker, never the folder itself nor anything else in it; a non-empty folder without the marker is
refused. ``.ccnn-run.lock`` holds an exclusive ``flock`` for as long as a run works in the folder
and is removed when the run ends: a second run on the same folder is refused, and a killed run's
lock goes with its process (the file it leaves is taken over). No file is written through a
symbolic link (:mod:`ccnn_hf.training.files`): a link planted as the folder, its marker, lock or
subfolders is refused, naming it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

import torch

from .files import open_own_file, refuse_link, remove, write_json_atomic
from .checkpoints import latest_checkpoint
from .errors import UserError, disk_errors

__all__ = [
    "MARKER",
    "LOCK",
    "check_output_dir",
    "clear_run_files",
    "acquire_lock",
    "RunLock",
    "read_marker",
    "write_marker",
    "check_resume_options",
    "check_resume_data",
    "data_fingerprint",
]

MARKER = ".ccnn-run.json"
LOCK = ".ccnn-run.lock"
# What every run writes at the top of its folder; the rest (the model's files, results, plot, card,
# the TensorBoard folder) is recorded in the marker before it is written.
RUN_FILES = ("logs", "checkpoints", ".tmp-model", ".README.md.tmp")
# Options that may differ between a run and its --resume: where it runs, goes and reports, not what it computes.
RESUME_MAY_CHANGE = {
    "config",
    "output_dir",
    "overwrite",
    "resume",
    "report_to",
    "push_to_hub",
    "hub_model_id",
    "hub_private",
    "save_total_limit",
    "eval_resolutions",
    "test_every",
    "cpu",
    "resume_changed_data",
}


def read_marker(out: Path) -> dict | None:
    """The marker of the run in ``out``, or None when ``out`` holds no ccnn-train run."""
    path = out / MARKER
    refuse_link(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(
            f"{path} is unreadable ({error}); if {out} is your run folder, delete that file and "
            "the run's files yourself, or choose another --output_dir"
        ) from None
    if not isinstance(data, dict) or data.get("tool") != "ccnn-train":
        raise UserError(f"{path} is not a ccnn-train run marker; choose another --output_dir")
    return data


def check_output_dir(out: Path, overwrite: bool, resume: bool) -> dict | None:
    """Refuse an output folder this run must not use; return the marker of the run found there (or None).
    Read-only: every process may call it."""
    if out.is_symlink():
        raise UserError(
            f"--output_dir {out} is a symbolic link (to {os.readlink(out)}); a run writes only into a real "
            f"folder: pass the folder it points to ({out.resolve()}) or another one"
        )
    if out.exists() and not out.is_dir():
        raise UserError(f"--output_dir {out} is a file, not a folder; choose a folder path")
    marker = read_marker(out) if out.is_dir() else None
    if resume:
        if marker is None:
            raise UserError(
                f"--resume: {out} holds no ccnn-train run (no {MARKER}); nothing to resume. "
                "Drop --resume to start a new run"
            )
        if latest_checkpoint(out / "checkpoints") is None:
            raise UserError(
                f"--resume: {out} has no complete checkpoint to resume from; pass --overwrite "
                "instead of --resume to start this run afresh"
            )
        return marker
    if marker is None:
        if out.is_dir() and any(
            not p.name.startswith(".ccnn-run") for p in out.iterdir()
        ):  # a lock left alone is no run
            raise UserError(
                f"--output_dir {out} is not empty and holds no ccnn-train run (no {MARKER}); "
                "nothing there is deleted or overwritten: choose a new or empty folder"
            )
        return None
    if not overwrite:
        raise UserError(
            f"--output_dir {out} holds another run; pass --overwrite to replace it or --resume to continue it"
        )
    return marker


def check_resume_options(marker: dict, args: argparse.Namespace) -> None:
    """Refuse a --resume whose options would train another model than the run it continues."""
    before = recorded_options(marker)
    now = _options(args)
    changed = [k for k in sorted(set(before) | set(now)) if k not in RESUME_MAY_CHANGE and before.get(k) != now.get(k)]
    if changed:
        details = ", ".join(f"--{k} {now.get(k)!r} (the run has {before.get(k)!r})" for k in changed)
        raise UserError(
            f"--resume with other options than the run in {args.output_dir}: {details}; resume with "
            f"the run's options (listed in {Path(args.output_dir) / MARKER}) or start a new run"
        )


def data_fingerprint(task, validation=None) -> dict:
    """What a run's marker records of its data (a :class:`~ccnn_hf.data.tasks.TaskData`, and the
    ``validation`` split held out of its training data): the sample counts, the classes and a
    digest of each split's inputs, labels and masks as the run sees them, so that a --resume on
    other data (or another validation split) is noticed."""
    held_out = (
        {"validation_samples": len(validation), "validation_digest": _digest(validation)}
        if validation is not None
        else {}
    )
    return {
        "train_samples": len(task.train),
        "test_samples": len(task.test),
        "classes": [str(name) for name in task.label_names],
        "train_digest": _digest(task.train),
        "test_digest": _digest(task.test),
        **held_out,
    }


def _digest(split) -> str:
    """blake2b of a split's tensors (inputs, labels, masks), shapes included."""
    digest = hashlib.blake2b(digest_size=16)
    for tensor in (split.inputs, split.labels, split.attention_mask, split.observed_mask):
        if tensor is not None:
            tensor = tensor.detach().cpu().contiguous()
            digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
            digest.update(tensor.view(-1).view(torch.uint8).numpy() if tensor.numel() else b"")
    return digest.hexdigest()


def check_resume_data(marker: dict, data: dict, accept: bool) -> None:
    """Refuse a --resume on other data than the run's (recorded by :func:`data_fingerprint`; a run
    written before fingerprints is not checked), naming what changed, unless ``accept``."""
    before = marker.get("data")
    if accept or before is None or before == data:
        return
    changes = [
        f"{key.replace('_', ' ')} {before.get(key)!r} -> {data[key]!r}" for key in data if before.get(key) != data[key]
    ]
    changes = [c for c in changes if "digest" not in c] or [
        f"the {split} samples' contents"
        for split in ("train", "test", "validation")
        if before.get(f"{split}_digest") != data.get(f"{split}_digest")
    ]
    raise UserError(
        f"--resume: the data differs from the run's in {marker.get('options', {}).get('output_dir', 'the folder')} "
        f"({'; '.join(changes)}); resume on the run's data, start a new run (--overwrite), or pass "
        "--resume_changed_data to continue on this data"
    )


def recorded_options(marker: dict) -> dict:
    """The options a run folder's marker records; an option added to ccnn-train after the run was
    written counts as its default there, or, for a model setting whose default changed when it was
    added (:data:`ccnn_hf.settings.LEGACY_DEFAULTS`), as the value that run was trained with."""
    from ..settings import BY_NAME, LEGACY_DEFAULTS
    from .args import build_parser

    recorded = marker.get("options", {})
    legacy = {BY_NAME[k].flag: v for k, v in LEGACY_DEFAULTS.items() if BY_NAME[k].flag not in recorded}
    return {**_options(build_parser().parse_args([])), **legacy, **recorded}


def _options(args: argparse.Namespace) -> dict:
    return {k: v for k, v in vars(args).items() if v is None or isinstance(v, (bool, int, float, str, list))}


def clear_run_files(out: Path, marker: dict) -> None:
    """Delete the files a previous run wrote in ``out`` (nothing else; ``out`` itself stays)."""
    own = set(RUN_FILES) | set(marker.get("files", [])) | {MARKER}
    for name in sorted(own):
        path = out / name
        if Path(name).name != name or name in ("", ".", "..", LOCK):
            continue  # a tampered marker never names anything outside the folder
        remove(path)


def write_marker(out: Path, args: argparse.Namespace, status: str, files: list[str], data: dict) -> None:
    """Write the run marker (atomically): the options, the status, the run's own top-level files and
    the data's fingerprint (:func:`data_fingerprint`)."""
    with disk_errors(out, MARKER):
        write_json_atomic(
            out / MARKER,
            {
                "tool": "ccnn-train",
                "format": 1,
                "status": status,
                "options": _options(args),
                "files": sorted(set(files)),
                "data": data,
            },
        )


class RunLock:
    """The held lock of a run folder (see :func:`acquire_lock`)."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd, self.path = fd, path

    def close(self) -> None:
        """Remove the lock file, while still holding it, if it is still the one locked; then release it."""
        if self.fd < 0:
            return
        try:
            if _same_file(self.fd, self.path):
                self.path.unlink()
        except OSError:
            pass  # a read-only folder keeps the (unlocked) file: a later run takes it over
        finally:
            os.close(self.fd)
            self.fd = -1


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` (not followed) is the file open as ``fd``."""
    try:
        named = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def acquire_lock(out: Path, attempts: int = 3) -> RunLock:
    """Hold an exclusive lock on ``out`` until the returned lock is closed (or the process ends).

    The lock file is opened without following a link and without truncation; once locked, it must
    still be the file named ``.ccnn-run.lock`` (a run that just ended removes it after its last
    use, so a lock taken on the removed file is retried on the new one)."""
    import fcntl

    path = out / LOCK
    for _ in range(attempts):
        fd = open_own_file(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 100, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise UserError(
                f"--output_dir {out} is in use by another ccnn-train run ({owner}); wait for it to end "
                "or choose another --output_dir"
            ) from None
        if _same_file(fd, path):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
            return RunLock(fd, path)
        os.close(fd)  # locked a file another run removed as it ended: take the new one
    raise UserError(f"could not lock {path}: it keeps being replaced; is another program using {out}?")
