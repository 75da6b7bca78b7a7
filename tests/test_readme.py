"""The README's code blocks run as written, in order, in a fresh folder (slow: about two minutes).

What the test adds, and nothing else:

* the files the README assumes the reader has: ``path/to/imagefolder.zip``, ``fsdd_audiofolder.zip``
  (tiny generated ones), ``last.ckpt`` (an official-layout state dict); ``run.yaml`` is the README's
  own ``yaml`` block; commands with a ``<placeholder>`` (a Hub repo or dataset of the reader's) are
  not run (:data:`PLACEHOLDER`), nor are commented-out lines;
* small sizes: every ``ccnn-train`` command gets :data:`TRAIN_FLAGS` (and :data:`ARCH_FLAGS`
  unless it fine-tunes ``--init_from`` a checkpoint) appended; set ``CCNN_README_TRAIN_FLAGS``
  (e.g. ``"--max_steps 5"``) to append other flags, or to ``""`` to run the commands at full size;
* ``ccnn-train`` is run in this process through its entry point ``ccnn_hf.training.train.main`` (the
  quickstart's ``--config`` spelled out when it has no argument), ``accelerate launch`` as
  ``python -m accelerate.commands.launch``, python blocks in their own interpreter;
  ``pip install`` and ``python -m pytest`` (this suite) are not run.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import reset_accelerate

REPO = Path(__file__).resolve().parents[1]
TRAIN_FLAGS = ["--max_steps", "2", "--batch_size", "8", "--eval_resolutions", "1x", "--report_to", "none"]
ARCH_FLAGS = ["--hidden", "8", "--blocks", "1", "--kernel_hidden", "8"]
BLOCK = re.compile(r"^```(bash|python|yaml)\n(.*?)^```", re.S | re.M)
PLACEHOLDER = re.compile(r"<[a-z_]+>")  # e.g. <user>/<dataset>: the reader's own, unknown here
# what the reader has before running the blocks; everything the README's examples write goes under runs/
READER_FILES = {"path", "fsdd_audiofolder.zip", "last.ckpt", "conversion", "run.yaml"}
SKIPPED = (("pip", "install"), ("python", "-m", "pytest"))

pytestmark = pytest.mark.slow


def readme_blocks() -> list[tuple[str, str]]:
    """(language, code) of every bash, python and yaml block of the README, in order."""
    return BLOCK.findall((REPO / "README.md").read_text(encoding="utf-8"))


def _png(rng: np.random.Generator, colour: bool) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    shape = (8, 8, 3) if colour else (8, 8)
    Image.fromarray((rng.random(shape) * 255).astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def _wav(freq: float) -> bytes:
    import soundfile

    buffer = io.BytesIO()
    t = np.arange(4000) / 8000
    soundfile.write(
        buffer, (0.3 * np.sin(2 * np.pi * freq * t) * 2**15).astype(np.int16), 8000, format="WAV", subtype="PCM_16"
    )
    return buffer.getvalue()


def make_reader_files(cwd: Path) -> None:
    """The inputs the README's commands name, tiny."""
    import torch

    from ccnn_hf import build_ccnn

    rng = np.random.default_rng(0)
    (cwd / "path" / "to").mkdir(parents=True)
    with zipfile.ZipFile(cwd / "path" / "to" / "imagefolder.zip", "w") as z:
        for split, count in (("train", 8), ("test", 4)):
            for label in ("cat", "dog"):
                for i in range(count):
                    z.writestr(f"{split}/{label}/{i}.png", _png(rng, colour=True))
    with zipfile.ZipFile(cwd / "fsdd_audiofolder.zip", "w") as z:
        for split, count in (("train", 4), ("test", 2)):
            for label, freq in (("zero", 300.0), ("one", 1200.0)):
                for i in range(count):
                    z.writestr(f"{split}/{label}/{i}.wav", _wav(freq + 10 * i))
    torch.save(build_ccnn("cifar10_4_140", mode="reference").state_dict(), cwd / "last.ckpt")
    (cwd / "conversion").symlink_to(REPO / "conversion")


def _train_flags(args: list[str]) -> list[str]:
    extra = os.environ.get("CCNN_README_TRAIN_FLAGS")
    if extra is not None:
        return shlex.split(extra)
    return TRAIN_FLAGS + ([] if "--init_from" in args else ARCH_FLAGS)


def command_for(words: list[str]) -> list[str] | None:
    """The command the test runs for a README command line (None: not run, see the module docstring)."""
    from ccnn_hf.training.args import QUICKSTART

    if any(tuple(words[: len(s)]) == s for s in SKIPPED) or any(PLACEHOLDER.search(w) for w in words):
        return None
    if words[0] == "ccnn-train":
        args = words[1:] or ["--config", str(QUICKSTART)]
        return [sys.executable, "-m", "ccnn_hf.training.train", *args, *_train_flags(args)]
    if words[:2] == ["accelerate", "launch"]:
        return [sys.executable, "-m", "accelerate.commands.launch", *words[2:], *_train_flags(words)]
    if words[0] == "python":
        return [sys.executable, *words[1:]]
    raise AssertionError(f"the README runs {words[0]!r}, which this test does not know how to run")


def bash_commands(code: str) -> list[list[str]]:
    """The commands of a bash block: one per line and per ``&&``, comments dropped."""
    commands = []
    for line in code.splitlines():
        line = re.split(r"\s+#", line, maxsplit=1)[0].strip()
        if line and not line.startswith("#"):
            commands += [shlex.split(part) for part in line.split("&&")]
    return commands


def run_in_process(args: list[str], cwd: Path, monkeypatch) -> None:
    """``ccnn-train ARGS`` through :func:`ccnn_hf.training.train.main` in ``cwd`` (a fresh Accelerator state, as a new
    process)."""
    from ccnn_hf.training.train import main

    monkeypatch.chdir(cwd)
    try:
        main(args)
    except SystemExit as exit_info:
        pytest.fail(f"README: ccnn-train {' '.join(args)} exited with {exit_info.code}")
    finally:
        reset_accelerate()


def test_every_readme_block_runs_in_order(tmp_path, local_hub, monkeypatch):
    cwd = tmp_path / "reader"
    cwd.mkdir()
    make_reader_files(cwd)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    ran = []
    for language, code in readme_blocks():
        if language == "yaml":
            name = re.match(r"#\s*(\S+\.ya?ml)", code)
            assert name, f"a README yaml block must start with '# <file>.yaml': {code[:60]!r}"
            (cwd / name.group(1).rstrip(":")).write_text(code, encoding="utf-8")
            continue
        if language == "python":
            commands = [[sys.executable, "-c", code]]
        else:
            commands = [c for c in map(command_for, bash_commands(code)) if c is not None]
        for command in commands:
            shown = " ".join(command[1:])[:300]
            started = time.perf_counter()
            if command[1:3] == ["-m", "ccnn_hf.training.train"]:
                run_in_process(command[3:], cwd, monkeypatch)  # the console script's own entry point, no start-up cost
            else:
                result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
                assert result.returncode == 0, f"README: {shown}\n{result.stdout[-1500:]}\n{result.stderr[-3000:]}"
            ran.append(shown)
            print(f"{time.perf_counter() - started:6.1f} s  {shown}")
    assert any("ccnn_hf.training.train --init_from runs/quickstart" in r for r in ran)  # the fine-tuning example
    assert (cwd / "runs" / "finetune" / "results.json").exists() and (
        cwd / "runs" / "converted" / "config.json"
    ).exists()
    assert {p.name for p in cwd.iterdir()} - READER_FILES == {"runs"}  # nothing left beside the reader's files
