"""Small shared helpers for the test-suite (no fixtures here; see conftest.py)."""

from __future__ import annotations

import copy

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """Location of the optional ``shared/`` folder beside the checkout (override: CCNN_HF_SHARED)."""
    return Path(os.environ.get("CCNN_HF_SHARED", REPO.parent / "shared"))


def require_shared(*parts: str) -> Path:
    """Path inside ``shared/``; skips the test cleanly when that file is not on this machine."""
    path = shared_dir().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not available (the shared data folder is optional)")
    return path


def assert_grad_checkpointing_matches(model: torch.nn.Module, x: torch.Tensor, seed: int, **tolerance) -> torch.Tensor:
    """``model`` (in train mode, dropout included) gives the same outputs, gradients and BatchNorm
    running statistics with ``set_grad_checkpointing()`` as without; returns the checkpointed output."""
    checkpointed = copy.deepcopy(model)
    checkpointed.set_grad_checkpointing()
    results = []
    for m in (model, checkpointed):
        torch.manual_seed(seed)
        out = m(x)
        out.sum().backward()
        results.append(out)
    torch.testing.assert_close(results[1], results[0])
    grads = dict(model.named_parameters())
    for n, p in checkpointed.named_parameters():
        torch.testing.assert_close(p.grad, grads[n].grad, msg=n, **tolerance)
    assert_same_buffers(checkpointed, model)
    return results[1]


def assert_same_buffers(model: torch.nn.Module, expected: torch.nn.Module) -> None:
    """Every buffer of ``model`` (BatchNorm running statistics and counters) equals ``expected``'s."""
    reference = dict(expected.named_buffers())
    assert reference, "the model has no buffers to compare"
    for name, buffer in model.named_buffers():
        torch.testing.assert_close(buffer, reference[name], rtol=0, atol=0, msg=name)


def write_tone_audiofolder(root: Path) -> Path:
    """An audiofolder of 1 s, 8 kHz, 16-bit tones under ``root``: "low" (~300 Hz) and "high"
    (~1500 Hz) classes, 6 train and 2 test recordings each."""
    import soundfile

    t = np.arange(8000) / 8000
    for split, count in (("train", 6), ("test", 2)):
        for label, freq in (("low", 300), ("high", 1500)):
            (root / split / label).mkdir(parents=True)
            for i in range(count):
                wave = (0.3 * np.sin(2 * np.pi * (freq + 20 * i) * t) * 2**15).astype(np.int16)
                soundfile.write(root / split / label / f"{i}.wav", wave, 8000, subtype="PCM_16")
    return root


def reset_accelerate() -> None:
    """Forget accelerate's process-wide state, so that the next run builds its own Accelerator."""
    from accelerate.state import AcceleratorState, PartialState

    AcceleratorState._reset_state(True)
    PartialState._reset_state()
