"""Crash-safe training checkpoints: ``accelerator.save_state`` into step-numbered folders.

A checkpoint is first written to a hidden temporary folder and renamed into place only when
complete (``trainer_state.json`` is its last file), so a crash mid-write never leaves a folder
that ``--resume`` would pick. Loading goes through ``accelerator.load_state``, which reads
tensors with ``torch.load(weights_only=True)`` and safetensors; nothing is unpickled.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import load

from .files import fresh_folder, remove, write_json_atomic
from .errors import UserError

__all__ = ["save_checkpoint", "latest_checkpoint", "load_checkpoint"]

STATE_FILE = "trainer_state.json"
STATE_KEYS = ("step", "epoch", "batches_in_epoch", "total_steps")


def save_checkpoint(accelerator: Accelerator, root: Path, step: int, state: dict, keep: int) -> Path:
    """Save everything needed to resume at ``step`` into ``root/step_{step:08d}`` (all processes call this)."""
    final = root / f"step_{step:08d}"
    tmp = root / f".tmp-step_{step:08d}"
    if accelerator.is_main_process:
        fresh_folder(tmp)  # made now: a link planted there is removed, never written through
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json_atomic(tmp / STATE_FILE, {**state, "step": step})
        remove(final)
        os.replace(tmp, final)
        for old in sorted(root.glob("step_*"))[:-keep] if keep > 0 else []:
            remove(old)
    accelerator.wait_for_everyone()
    return final


def latest_checkpoint(root: Path) -> Path | None:
    """Newest complete checkpoint folder under ``root`` (temporary leftovers are ignored)."""
    complete = [p for p in sorted(root.glob("step_*")) if not p.is_symlink() and (p / STATE_FILE).exists()]
    return complete[-1] if complete else None


def load_checkpoint(accelerator: Accelerator, folder: Path) -> dict:
    """Restore model, optimiser, scheduler and RNG states; return the saved trainer state.

    accelerate skips random states it cannot read with a log line only, and the resumed run would
    then draw other dropout masks than the interrupted one: here an unreadable or tampered
    ``random_states_*.pkl`` (or any other unloadable part) is a :class:`UserError`."""
    try:
        state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise _unusable(folder, f"{STATE_FILE} is unreadable ({error})") from None
    if not isinstance(state, dict) or not all(isinstance(state.get(k), int) for k in STATE_KEYS):
        raise _unusable(folder, f"{STATE_FILE} lacks the integers {', '.join(STATE_KEYS)}")
    rng_file = folder / f"random_states_{accelerator.process_index}.pkl"
    try:
        rng = load(rng_file)
        torch_state = rng["torch_manual_seed"]
    except Exception as error:  # anything the safe unpickler refuses, or a truncated / foreign file
        raise _unusable(
            folder,
            f"{rng_file.name} is unreadable or tampered ({type(error).__name__}: "
            f"{_first_line(error)}), so the run could not continue exactly",
        ) from None
    for path in _state_files(folder):
        _check_readable(folder, path)
    try:
        accelerator.load_state(str(folder))
    except (OSError, RuntimeError, KeyError, ValueError) as error:
        raise _unusable(folder, f"it does not fit the model built from these options ({_first_line(error)})") from None
    if not torch.equal(torch.get_rng_state(), torch_state):
        raise _unusable(folder, f"accelerate did not restore the random states of {rng_file.name}")
    return state


def _state_files(folder: Path) -> list[Path]:
    """The tensor files ``accelerator.load_state`` reads from ``folder`` (model, optimiser,
    scheduler, sampler, scaler; the random states are checked on their own)."""
    return sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".pt"))


def _check_readable(folder: Path, path: Path) -> None:
    """Refuse a checkpoint file that the safe loaders cannot read, naming it: a zero-byte, truncated
    or garbled file, or a pickle holding objects other than tensors (never unpickled: the file is
    read with ``weights_only=True``, memory-mapped so that no tensor data is copied)."""
    from safetensors import safe_open

    if path.stat().st_size == 0:
        raise _unusable(folder, f"{path.name} is empty (0 bytes): the checkpoint is truncated")
    try:
        if path.suffix == ".safetensors":
            with safe_open(str(path), "pt") as handle:
                handle.keys()
        else:
            torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # safetensors' and torch's own error types for a file they cannot parse
        if isinstance(error, pickle.UnpicklingError) and "Weights only load failed" in str(error):
            why = f"{path.name} holds objects other than tensors, which the safe loader refuses; it was not loaded"
        else:
            why = f"{path.name} is truncated or corrupt ({type(error).__name__}: {_first_line(error)})"
        raise _unusable(folder, why) from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def _unusable(folder: Path, why: str) -> UserError:
    return UserError(
        f"cannot resume from checkpoint {folder}: {why}. Resume with the run's own options, or "
        "delete that checkpoint folder to resume from the one before it"
    )
