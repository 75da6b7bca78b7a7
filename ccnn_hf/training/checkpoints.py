"""Crash-safe training checkpoints: ``accelerator.save_state`` into step-numbered folders.

A checkpoint is first written to a hidden temporary folder and renamed into place only when
complete (``trainer_state.json`` is its last file), so a crash mid-write never leaves a folder
that ``--resume`` would pick. Loading goes through ``accelerator.load_state``, which reads
tensors with ``torch.load(weights_only=True)`` and safetensors; nothing is unpickled.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from accelerate import Accelerator

__all__ = ["save_checkpoint", "latest_checkpoint", "load_checkpoint", "write_json_atomic"]

STATE_FILE = "trainer_state.json"


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON to ``path`` through a temporary file and an atomic rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def save_checkpoint(accelerator: Accelerator, root: Path, step: int, state: dict, keep: int) -> Path:
    """Save everything needed to resume at ``step`` into ``root/step_{step:08d}`` (all processes call this)."""
    final = root / f"step_{step:08d}"
    tmp = root / f".tmp-step_{step:08d}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json_atomic(tmp / STATE_FILE, {**state, "step": step})
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in sorted(root.glob("step_*"))[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def latest_checkpoint(root: Path) -> Path | None:
    """Newest complete checkpoint folder under ``root`` (temporary leftovers are ignored)."""
    complete = [p for p in sorted(root.glob("step_*")) if (p / STATE_FILE).exists()]
    return complete[-1] if complete else None


def load_checkpoint(accelerator: Accelerator, folder: Path) -> dict:
    """Restore model, optimiser, scheduler and RNG states; return the saved trainer state."""
    accelerator.load_state(str(folder))
    return json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
